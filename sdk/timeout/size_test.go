package timeout

import (
	"testing"
	"unsafe"
)

// Run allocates one lazyCtx per call: 64 bytes, one size class and one
// cache line, so that contexts recycled on different CPUs never share a
// line and the fields a context needs only when watched stay out of it.
func TestLazyCtxSize(t *testing.T) {
	if s := unsafe.Sizeof(lazyCtx{}); s != 64 {
		t.Fatalf("lazyCtx is %d bytes; keep it at 64 so recycled contexts do not share cache lines", s)
	}
}
