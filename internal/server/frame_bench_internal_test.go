package server

import (
	"testing"

	"github.com/brownout-io/brownout"
)

func BenchmarkReportFrame(b *testing.B) {
	data := []byte(`{"type":"report","cpu_percent":20.5,"memory_percent":30,"requests":100,"errors":3,"at":"2026-12-02T06:27:08.783799546Z"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeClientFrame(data, "svc", "inst"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f clientFrame
			if err := brownout.DecodeJSON(data, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
