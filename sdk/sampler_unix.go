//go:build unix

package sdk

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// processSampler measures the process itself, without dependencies.
//
// CPU% is the process's CPU time (getrusage) over wall time, divided by
// GOMAXPROCS, which the Go runtime derives from the container's CPU quota:
// 100 means the process uses all the CPU it may.
//
// Memory% is resident memory over the memory limit: the cgroup's
// memory.max when the process runs in a limited cgroup (v2), else the
// machine's memory. It is measured on Linux only (0 elsewhere).
type processSampler struct {
	lastCPU  time.Duration
	lastWall time.Time
	limit    uint64 // bytes; found once, 0 if unknown
	pageSize uint64
}

func newProcessSampler() *processSampler {
	return &processSampler{limit: memoryLimit(), pageSize: uint64(os.Getpagesize())}
}

func (s *processSampler) sample() (cpu, mem float64) {
	now := time.Now()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if !s.lastWall.IsZero() {
			if wall := now.Sub(s.lastWall); wall > 0 {
				cpu = float64(total-s.lastCPU) / float64(wall) / float64(runtime.GOMAXPROCS(0)) * 100
			}
		}
		s.lastCPU, s.lastWall = total, now
	}
	if s.limit > 0 {
		if rss := residentBytes(s.pageSize); rss > 0 {
			mem = float64(rss) / float64(s.limit) * 100
		}
	}
	return clampPercent(cpu), clampPercent(mem)
}

// residentBytes reads the resident set size from /proc/self/statm.
func residentBytes(pageSize uint64) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * pageSize
}

// memoryLimit is the cgroup v2 limit if one is set, else MemTotal.
func memoryLimit() uint64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("MemTotal:")); ok {
			fields := bytes.Fields(rest)
			if len(fields) == 0 {
				return 0
			}
			kb, err := strconv.ParseUint(string(fields[0]), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
