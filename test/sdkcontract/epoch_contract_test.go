package sdkcontract_test

import (
	"path/filepath"
	"testing"

	"github.com/brownout-io/brownout/internal/servertest"
	"github.com/brownout-io/brownout/sdk"
)

// A controller whose history was reset (a fresh data directory) counts
// versions from 1 again. A client holding a higher version from the old
// history must take the new controller's state, not ignore it as stale.
func TestContractControllerHistoryReset(t *testing.T) {
	stateFile := filepath.Join(t.TempDir(), "state.json")
	old := servertest.Start(t)
	c := connectTo(t, old.URL, "c-1", old.AdminToken, sdk.WithStateFile(stateFile))
	waitFor(t, "first state", func() bool { return c.State().Version >= 1 })
	for i := 0; i < 6; i++ {
		override(t, old, (i%3)+1) // push the old history's version up
	}
	waitFor(t, "old state", func() bool { return c.State().Version >= 7 && c.Level() == 3 })
	oldVersion := c.State().Version
	c.Close()
	old.Stop(t)

	fresh := servertest.Start(t) // new data directory: new epoch, versions from 1
	c2 := connectTo(t, fresh.URL, "c-1", fresh.AdminToken, sdk.WithStateFile(stateFile))
	if c2.Level() != 3 {
		t.Fatalf("before connecting: level %v, want the persisted 3", c2.Level())
	}
	waitFor(t, "the reset controller's state", func() bool {
		st := c2.State()
		return st.Version < oldVersion && st.Level == 0
	})
	override(t, fresh, 2)
	waitFor(t, "a change after the reset", func() bool { return c2.Level() == 2 })
}
