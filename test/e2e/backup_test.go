package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stateOf subscribes to svc and returns its first state frame's epoch and
// version.
func stateOf(t *testing.T, base, svc string) (epoch string, version uint64, level int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := dialSubscriber(t, ctx, base, adminToken, svc, "probe")
	defer ws.CloseNow()
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("first frame: %v", err)
	}
	var f struct {
		Type    string `json:"type"`
		Epoch   string `json:"epoch"`
		Version uint64 `json:"version"`
		Level   int    `json:"level"`
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Type != "state" || f.Epoch == "" {
		t.Fatalf("first frame %s: %v", data, err)
	}
	return f.Epoch, f.Version, f.Level
}

// TestBackupWhileServingThenRestore takes a backup with the real binary
// while reports stream in, changes more, stops the controller, restores
// and checks what came back: the data of the backup (not what followed
// it), its versions, and a new epoch so that SDKs resync at once.
func TestBackupWhileServingThenRestore(t *testing.T) {
	ctl := startController(t, "--drain", "0")
	api := newClient(ctl.url(), adminToken)
	rep := func(svc string) map[string]any {
		return map[string]any{"service": svc, "instance": svc + "-1", "cpu_percent": 10, "memory_percent": 10, "requests": 10, "errors": 0}
	}
	api.must(t, "POST", "/api/v1/reports", rep("bk"), 202, nil)
	var kept struct {
		ID string `json:"id"`
	}
	api.must(t, "POST", "/api/v1/overrides", map[string]any{"service": "bk", "level": 2, "reason": "kept by the backup"}, 201, &kept)
	th := map[string]any{"cooldown": "42s", "levels": []map[string]any{
		{"level": 1, "cpu": map[string]any{"enter": 71, "exit": 61}, "memory": map[string]any{"enter": 75, "exit": 65}, "error_rate": map[string]any{"enter": 0.05, "exit": 0.03}},
		{"level": 2, "cpu": map[string]any{"enter": 81, "exit": 71}, "memory": map[string]any{"enter": 85, "exit": 75}, "error_rate": map[string]any{"enter": 0.10, "exit": 0.08}},
		{"level": 3, "cpu": map[string]any{"enter": 91, "exit": 81}, "memory": map[string]any{"enter": 95, "exit": 85}, "error_rate": map[string]any{"enter": 0.25, "exit": 0.23}},
	}}
	api.must(t, "PUT", "/api/v1/services/bk/thresholds", th, 200, nil)
	epoch1, v1, level1 := stateOf(t, ctl.url(), "bk")
	if level1 != 2 {
		t.Fatalf("level %d before the backup, want 2", level1)
	}

	// Reports keep arriving while the backup is taken.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if st, _, _ := api.do(ctx, "POST", "/api/v1/reports", rep("load-"+itoa(i%20))); st == 202 {
				sent.Add(1)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	file := filepath.Join(t.TempDir(), "brownout.backup.db")
	out, err := exec.Command(binary, "backup", "--out", file, "--server", ctl.url(), "--token", adminToken).CombinedOutput()
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "written to "+file) {
		t.Fatalf("backup said %q", out)
	}
	if sent.Load() == 0 {
		t.Fatal("no report was accepted while the backup ran")
	}
	t.Logf("backup: %s(%d reports accepted meanwhile)", out, sent.Load())

	// After the backup: a change the restore must undo.
	api.must(t, "POST", "/api/v1/overrides", map[string]any{"service": "bk", "level": 3, "reason": "after the backup"}, 201, nil)
	if _, v, _ := stateOf(t, ctl.url(), "bk"); v <= v1 {
		t.Fatalf("version %d after a new override, want > %d", v, v1)
	}

	// A live controller's directory is refused.
	if out, err := exec.Command(binary, "restore", "--from", file, "--data", ctl.dataDir).CombinedOutput(); err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("restore under a live controller: %v\n%s", err, out)
	}
	if err := ctl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-ctl.exited
	ctl.cmd = nil
	out, err = exec.Command(binary, "restore", "--from", file, "--data", ctl.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Epoch "+epoch1+" → ") || !strings.Contains(string(out), "before-restore-") {
		t.Fatalf("restore said %q", out)
	}
	t.Logf("restore: %s", out)
	ctl.restart()

	epoch2, v2, level2 := stateOf(t, ctl.url(), "bk")
	if epoch2 == epoch1 || epoch2 == "" {
		t.Fatalf("epoch %q after restore, want a new one (was %q)", epoch2, epoch1)
	}
	if v2 != v1 || level2 != 2 {
		t.Fatalf("restored bk at version %d level %d, want the backup's %d and 2", v2, level2, v1)
	}
	var ovs struct {
		Items []struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"items"`
	}
	api.must(t, "GET", "/api/v1/overrides", nil, 200, &ovs)
	if len(ovs.Items) != 1 || ovs.Items[0].ID != kept.ID {
		t.Fatalf("overrides after restore %+v, want only %s", ovs.Items, kept.ID)
	}
	var gotTh struct {
		Cooldown string `json:"cooldown"`
	}
	api.must(t, "GET", "/api/v1/services/bk/thresholds", nil, 200, &gotTh)
	if gotTh.Cooldown != "42s" {
		t.Fatalf("restored thresholds cooldown %q, want 42s", gotTh.Cooldown)
	}
	// Versions go on upwards within the new epoch.
	api.must(t, "DELETE", "/api/v1/overrides/"+kept.ID, nil, 200, nil)
	if e, v, _ := stateOf(t, ctl.url(), "bk"); e != epoch2 || v <= v2 {
		t.Fatalf("after a change: epoch %s version %d, want %s and > %d", e, v, epoch2, v2)
	}
}
