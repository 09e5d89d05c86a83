package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/servertest"
)

type appConfig = app.Config

func doWithContentType(t *testing.T, s *servertest.Server, method, path, body, ct string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
