package timeout

import (
	"testing"
	"unsafe"
)

func TestLazyCtxSize(t *testing.T) {
	if s := unsafe.Sizeof(lazyCtx{}); s != 128 {
		t.Fatalf("lazyCtx is %d bytes; keep it at 128 so recycled contexts do not share cache lines", s)
	}
}
