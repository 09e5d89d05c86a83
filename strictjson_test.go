package brownout_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/brownout-io/brownout"
)

func TestCheckKeys(t *testing.T) {
	big := `{` + strings.Repeat(`"k":1,`, 0)
	for i := range 40 {
		big += `"k` + strings.Repeat("x", i) + `":1,`
	}
	tests := []struct {
		name, doc   string
		field, part string // empty field: accepted
	}{
		{"plain", `{"level":1,"reason":"x"}`, "", ""},
		{"same key in sibling objects", `[{"a":1},{"a":2}]`, "", ""},
		{"same key at different depths", `{"a":{"a":{"a":1}}}`, "", ""},
		{"key text inside a string value", `{"a":"\"a\":1","b":"a"}`, "", ""},
		{"duplicate", `{"level":1,"level":3}`, "level", `duplicate key "level"`},
		{"case variant", `{"level":1,"LEVEL":3}`, "LEVEL", `"LEVEL" differs only in case from "level"`},
		{"escaped duplicate", `{"level":1,"\u006cevel":3}`, "level", `duplicate key "level"`},
		{"kelvin sign folds to k", `{"k":1,"` + "\u212a" + `":2}`, "\u212a", "differs only in case"},
		{"nested", `{"components":{"db":{"metrics":{"a":1,"A":2}}}}`, "components.db.metrics.A", "differs only in case"},
		{"in an array element", `[{"a":1},{"b":1,"b":2}]`, "1.b", "duplicate"},
		{"after a nested value", `{"a":{"x":[1,{"y":2}]},"a":1}`, "a", "duplicate"},
		{"big object", big + `"kxxx":2}`, "kxxx", "duplicate"},
		{"malformed is left to the decoder", `{"a":1,"a`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := brownout.CheckKeys([]byte(tt.doc))
			if tt.field == "" {
				if err != nil {
					t.Fatalf("CheckKeys(%s) = %v, want nil", tt.doc, err)
				}
				return
			}
			var be *brownout.Error
			if !errors.As(err, &be) {
				t.Fatalf("CheckKeys(%s) = %v, want a *brownout.Error", tt.doc, err)
			}
			if be.Code != brownout.EBADREQUEST || be.Field != tt.field || !strings.Contains(be.Message, tt.part) {
				t.Fatalf("CheckKeys(%s) = %s field %q %q, want bad_request field %q containing %q", tt.doc, be.Code, be.Field, be.Message, tt.field, tt.part)
			}
		})
	}
}

// TestDecodeJSONSpeaksJSONNotGo guards error messages against naming the
// controller's Go types ("health.Report", "float64").
func TestDecodeJSONSpeaksJSONNotGo(t *testing.T) {
	type inner struct {
		N float64 `json:"n"`
	}
	var v struct {
		In   inner   `json:"in"`
		List []inner `json:"list"`
	}
	for _, doc := range []string{`{"in":[]}`, `{"in":{"n":"x"}}`, `{"list":{}}`, `[]`, `{"list":[3]}`} {
		err := brownout.DecodeJSON([]byte(doc), &v)
		if err == nil {
			t.Fatalf("DecodeJSON(%s): no error", doc)
		}
		msg := err.Error()
		for _, goName := range []string{"inner", "float64", "struct", "brownout", "[]"} {
			if strings.Contains(msg, goName) {
				t.Errorf("DecodeJSON(%s) = %q: names the Go type %q", doc, msg, goName)
			}
		}
	}
}
