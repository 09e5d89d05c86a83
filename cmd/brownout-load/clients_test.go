package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

// TestPropOverClientProcesses measures propagation with the subscribers
// held by three child processes, and checks that every change is counted
// for every subscriber, as with one process.
func TestPropOverClientProcesses(t *testing.T) {
	srv := servertest.Start(t)
	floor := startFloor(t)
	o, err := parseOptions("prop", []string{"--url", srv.URL, "--token", srv.AdminToken, "--pid", strconv.Itoa(os.Getpid()),
		"--subs", "31", "--services", "3", "--changes", "4", "--rounds", "2", "--settle", "10ms", "--client-procs", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.baselineURL, o.progress = floor.URL, false
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := &Results{Machine: describeMachine()}
	if err := runProp(ctx, o, res, io.Discard); err != nil {
		t.Fatalf("prop: %v", err)
	}
	p := res.Propagation[0]
	if p.Ours.N != 4 || p.Floor.N != 4 {
		t.Fatalf("measured %d changes (floor %d), want 4", p.Ours.N, p.Floor.N)
	}
	if p.Ours.P50Ms <= 0 || p.Floor.P50Ms <= 0 || p.PerSubP99Ms <= 0 {
		t.Errorf("implausible latencies: %+v floor %+v", p.Ours, p.Floor)
	}
}

// TestSubsBoundedPerProcess refuses more subscribers than the controller
// processes can hold, and lets prop go past one client process's.
func TestSubsBoundedPerProcess(t *testing.T) {
	if _, err := parseOptions("prop", []string{"--bin", "x", "--subs", "30000"}, io.Discard); err == nil {
		t.Error("30,000 subscribers on one controller accepted")
	}
	o, err := parseOptions("prop", []string{"--bin", "x", "--replicas", "3", "--subs", "30000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.clientProcs(30000); got != 2 {
		t.Errorf("client processes for 30,000: %d, want 2", got)
	}
	if got := o.clientProcs(10000); got != 1 {
		t.Errorf("client processes for 10,000: %d, want 1", got)
	}
	if _, err := parseOptions("ingest", []string{"--bin", "x", "--replicas", "3", "--subs", "30000"}, io.Discard); err == nil {
		t.Error("ingest with 30,000 subscribers in one process accepted")
	}
}
