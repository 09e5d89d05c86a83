package sdk

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"
)

// processSampler measures the process itself with gopsutil, which reads
// the platform's process accounting (procfs on Linux, sysctl or the
// Windows API elsewhere).
//
// CPU% is the process's CPU time over wall time, divided by GOMAXPROCS,
// which the Go runtime derives from the container's CPU quota: 100 means
// the process uses all the CPU it may, not one core of a large host.
//
// Memory% is resident memory over the memory limit: the cgroup's
// memory.max when the process runs in a limited cgroup (v2), else the
// machine's memory, so a container near its limit reads near 100.
type processSampler struct {
	proc     *process.Process
	lastCPU  float64 // seconds of user+system time
	lastWall time.Time
	limit    uint64 // bytes; found once, 0 if unknown
}

func newProcessSampler() *processSampler {
	p, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		p = nil
	}
	return &processSampler{proc: p, limit: memoryLimit()}
}

func (s *processSampler) sample() (cpu, memPct float64) {
	if s.proc == nil {
		return 0, 0
	}
	now := time.Now()
	if t, err := s.proc.Times(); err == nil {
		total := t.User + t.System
		if !s.lastWall.IsZero() {
			if wall := now.Sub(s.lastWall).Seconds(); wall > 0 {
				cpu = (total - s.lastCPU) / wall / float64(runtime.GOMAXPROCS(0)) * 100
			}
		}
		s.lastCPU, s.lastWall = total, now
	}
	if s.limit > 0 {
		if mi, err := s.proc.MemoryInfo(); err == nil && mi.RSS > 0 {
			memPct = float64(mi.RSS) / float64(s.limit) * 100
		}
	}
	return clampPercent(cpu), clampPercent(memPct)
}

// memoryLimit is the cgroup v2 limit if one is set, else the machine's
// total memory.
func memoryLimit() uint64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		return vm.Total
	}
	return 0
}

// hostSampler measures the whole host, as the seed's psutil view did:
// CPU% is the busy share of every CPU since the previous sample
// (cpu.Percent over all cores), memory% the share of the machine's memory
// in use (mem.VirtualMemory's UsedPercent). Neither knows a container's
// limits.
type hostSampler struct {
	primed bool
}

func (s *hostSampler) sample() (cpuPct, memPct float64) {
	// With interval 0, cpu.Percent compares with its previous call; the
	// first call primes it.
	if p, err := cpu.Percent(0, false); err == nil && len(p) == 1 && s.primed {
		cpuPct = p[0]
	}
	s.primed = true
	if vm, err := mem.VirtualMemory(); err == nil {
		memPct = vm.UsedPercent
	}
	return clampPercent(cpuPct), clampPercent(memPct)
}
