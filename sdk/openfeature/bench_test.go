package openfeature

import (
	"context"
	"sync/atomic"
	"testing"

	of "github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/memprovider"
)

// BenchmarkEnabled reads one boolean flag three ways, in parallel:
//
//   - baseline_atomic_map: a bare map read through an atomic.Pointer, the
//     floor for any lock-free flag read (to compare runs on a loaded machine);
//   - sdk_Enabled: the Brownout client's atomic-pointer snapshot;
//   - openfeature_inmemory: the OpenFeature client over its in-memory
//     provider, the floor for any OpenFeature provider;
//   - openfeature_brownout: the OpenFeature client over this provider.
//
// Run with -cpu 1,2: a contention-free read costs less per op on 2 CPUs.
func BenchmarkEnabled(b *testing.B) {
	client := offlineClient(b, map[string]bool{"analytics": true})
	mem := memprovider.NewInMemoryProvider(map[string]memprovider.InMemoryFlag{
		"analytics": {
			Key: "analytics", State: memprovider.Enabled, DefaultVariant: "on",
			Variants: map[string]any{"on": true, "off": false},
		},
	})
	if err := of.SetNamedProviderAndWait("bench-inmemory", mem); err != nil {
		b.Fatal(err)
	}
	if err := of.SetNamedProviderAndWait("bench-brownout", NewProvider(client)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	evalCtx := of.EvaluationContext{}

	var bare atomic.Pointer[map[string]bool]
	bare.Store(&map[string]bool{"analytics": true})
	b.Run("baseline_atomic_map", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !(*bare.Load())["analytics"] {
					b.Error("flag off")
				}
			}
		})
	})
	b.Run("sdk_Enabled", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !client.Enabled("analytics") {
					b.Error("flag off")
				}
			}
		})
	})
	for _, path := range []struct{ name, domain string }{
		{"openfeature_inmemory", "bench-inmemory"},
		{"openfeature_brownout", "bench-brownout"},
	} {
		ofc := of.NewClient(path.domain)
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !ofc.Boolean(ctx, "analytics", false, evalCtx) {
						b.Error("flag off")
					}
				}
			})
		})
	}
}
