package openfeature

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/brownout-io/brownout/sdk"
	"github.com/cucumber/godog"
	of "github.com/open-feature/go-sdk/openfeature"
)

// notApplicable are the scenarios of the specification's evaluation suite
// that cannot apply to Brownout, and why. Every other scenario must pass.
var notApplicable = map[string]string{
	"Resolves string value":    "Brownout's only string flag is the level name (brownout.level_name), never \"hi\"",
	"Resolves string details":  "as above: no string flag other than the level name",
	"Resolves integer value":   "Brownout's only integer flag is the level (brownout.level), 0-3, never 10",
	"Resolves integer details": "as above: no integer flag other than the level",
	"Resolves float value":     "Brownout has no float flags",
	"Resolves float details":   "Brownout has no float flags",
	"Resolves object value":    "Brownout has no object flags",
	"Resolves object details":  "Brownout has no object flags",
	"Resolves based on context": "Brownout flags depend on the service's level, never on the evaluation " +
		"context: one answer per service for every caller",
}

type gherkinKey struct{}

// gherkinState is what one scenario's steps pass along.
type gherkinState struct {
	boolValue    bool
	details      of.InterfaceEvaluationDetails
	defaultValue any
}

func stateOf(ctx context.Context) *gherkinState {
	s, _ := ctx.Value(gherkinKey{}).(*gherkinState)
	return s
}

// TestOpenFeatureEvaluationSuite runs the specification's Gherkin
// evaluation suite against the provider, reading a controller that serves
// the suite's boolean flags ("boolean-flag" on, "wrong-flag" on).
func TestOpenFeatureEvaluationSuite(t *testing.T) {
	fake := newFakeController(t, map[string]bool{"boolean-flag": true, "wrong-flag": true})
	client, err := sdk.Connect(context.Background(), fake.srv.URL, "checkout", "checkout-1",
		sdk.WithLogger(discard), sdk.WithReportInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	waitFor(t, "the controller's state", func() bool { return client.Stats().Connected })
	const domain = "brownout-gherkin"
	provider := NewProvider(client)
	t.Cleanup(func() { _ = of.SetNamedProviderAndWait(domain, of.NoopProvider{}) })
	flags := of.NewClient(domain)

	var passed, skipped []string
	suite := godog.TestSuite{
		Name: "evaluation.feature",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			sc.Before(func(ctx context.Context, s *godog.Scenario) (context.Context, error) {
				if _, ok := notApplicable[s.Name]; ok {
					skipped = append(skipped, s.Name)
					return ctx, godog.ErrSkip
				}
				return context.WithValue(ctx, gherkinKey{}, &gherkinState{}), nil
			})
			sc.After(func(ctx context.Context, s *godog.Scenario, err error) (context.Context, error) {
				if err == nil && stateOf(ctx) != nil {
					passed = append(passed, s.Name)
				}
				return ctx, nil
			})
			sc.Step(`^a stable provider$`, func() error { return of.SetNamedProviderAndWait(domain, provider) })

			sc.Step(`^a boolean flag with key "([^"]*)" is evaluated with default value "([^"]*)"$`, func(ctx context.Context, key, def string) error {
				d, err := strconv.ParseBool(def)
				if err != nil {
					return err
				}
				v, err := flags.BooleanValue(ctx, key, d, of.EvaluationContext{})
				stateOf(ctx).boolValue = v
				return err
			})
			sc.Step(`^the resolved boolean value should be "([^"]*)"$`, func(ctx context.Context, want string) error {
				if got := strconv.FormatBool(stateOf(ctx).boolValue); got != want {
					return fmt.Errorf("resolved %s, want %s", got, want)
				}
				return nil
			})
			sc.Step(`^a boolean flag with key "([^"]*)" is evaluated with details and default value "([^"]*)"$`, func(ctx context.Context, key, def string) error {
				d, err := strconv.ParseBool(def)
				if err != nil {
					return err
				}
				det, err := flags.BooleanValueDetails(ctx, key, d, of.EvaluationContext{})
				stateOf(ctx).details = of.InterfaceEvaluationDetails{Value: det.Value, EvaluationDetails: det.EvaluationDetails}
				return err
			})
			sc.Step(`^the resolved boolean details value should be "([^"]*)", the variant should be "([^"]*)", and the reason should be "([^"]*)"$`, func(ctx context.Context, value, variant, reason string) error {
				d := stateOf(ctx).details
				if got := fmt.Sprint(d.Value); got != value || d.Variant != variant || string(d.Reason) != reason {
					return fmt.Errorf("got value %s, variant %q, reason %q; want %s, %q, %q", got, d.Variant, d.Reason, value, variant, reason)
				}
				return nil
			})
			sc.Step(`^a non-existent string flag with key "([^"]*)" is evaluated with details and a fallback value "([^"]*)"$`, func(ctx context.Context, key, def string) error {
				det, _ := flags.StringValueDetails(ctx, key, def, of.EvaluationContext{})
				st := stateOf(ctx)
				st.details = of.InterfaceEvaluationDetails{Value: det.Value, EvaluationDetails: det.EvaluationDetails}
				st.defaultValue = def
				return nil
			})
			sc.Step(`^the default string value should be returned$`, func(ctx context.Context) error {
				if st := stateOf(ctx); st.details.Value != st.defaultValue {
					return fmt.Errorf("got %v, want the default %v", st.details.Value, st.defaultValue)
				}
				return nil
			})
			errorCodeIs := func(ctx context.Context, code string) error {
				d := stateOf(ctx).details
				if d.Reason != of.ErrorReason || string(d.ErrorCode) != code {
					return fmt.Errorf("reason %q, error code %q; want ERROR, %s", d.Reason, d.ErrorCode, code)
				}
				return nil
			}
			sc.Step(`^the reason should indicate an error and the error code should indicate a missing flag with "([^"]*)"$`, errorCodeIs)
			sc.Step(`^a string flag with key "([^"]*)" is evaluated as an integer, with details and a fallback value (\d+)$`, func(ctx context.Context, key string, def int64) error {
				det, _ := flags.IntValueDetails(ctx, key, def, of.EvaluationContext{})
				st := stateOf(ctx)
				st.details = of.InterfaceEvaluationDetails{Value: det.Value, EvaluationDetails: det.EvaluationDetails}
				st.defaultValue = def
				return nil
			})
			sc.Step(`^the default integer value should be returned$`, func(ctx context.Context) error {
				if st := stateOf(ctx); st.details.Value != st.defaultValue {
					return fmt.Errorf("got %v, want the default %v", st.details.Value, st.defaultValue)
				}
				return nil
			})
			sc.Step(`^the reason should indicate an error and the error code should indicate a type mismatch with "([^"]*)"$`, errorCodeIs)

			// The steps of the scenarios that do not apply (see
			// notApplicable) are defined so that the suite stays strict:
			// an unknown step fails it.
			na := func() error { return errors.New("scenario does not apply to Brownout") }
			for _, re := range []string{
				`^a string flag with key "([^"]*)" is evaluated with default value "([^"]*)"$`,
				`^the resolved string value should be "([^"]*)"$`,
				`^an integer flag with key "([^"]*)" is evaluated with default value (\d+)$`,
				`^the resolved integer value should be (\d+)$`,
				`^a float flag with key "([^"]*)" is evaluated with default value (\-*\d+\.\d+)$`,
				`^the resolved float value should be (\-*\d+\.\d+)$`,
				`^an object flag with key "([^"]*)" is evaluated with a null default value$`,
				`^the resolved object value should be contain fields "([^"]*)", "([^"]*)", and "([^"]*)", with values "([^"]*)", "([^"]*)" and (\d+), respectively$`,
				`^a string flag with key "([^"]*)" is evaluated with details and default value "([^"]*)"$`,
				`^the resolved string details value should be "([^"]*)", the variant should be "([^"]*)", and the reason should be "([^"]*)"$`,
				`^an integer flag with key "([^"]*)" is evaluated with details and default value (\d+)$`,
				`^the resolved integer details value should be (\d+), the variant should be "([^"]*)", and the reason should be "([^"]*)"$`,
				`^a float flag with key "([^"]*)" is evaluated with details and default value (\-*\d+\.\d+)$`,
				`^the resolved float details value should be (\-*\d+\.\d+), the variant should be "([^"]*)", and the reason should be "([^"]*)"$`,
				`^an object flag with key "([^"]*)" is evaluated with details and a null default value$`,
				`^the resolved object details value should be contain fields "([^"]*)", "([^"]*)", and "([^"]*)", with values "([^"]*)", "([^"]*)" and (\d+), respectively$`,
				`^the variant should be "([^"]*)", and the reason should be "([^"]*)"$`,
				`^context contains keys "([^"]*)", "([^"]*)", "([^"]*)", "([^"]*)" with values "([^"]*)", "([^"]*)", (\d+), "([^"]*)"$`,
				`^a flag with key "([^"]*)" is evaluated with default value "([^"]*)"$`,
				`^the resolved string response should be "([^"]*)"$`,
				`^the resolved flag value is "([^"]*)" when the context is empty$`,
			} {
				sc.Step(re, na)
			}
		},
		Options: &godog.Options{
			Format:   "progress",
			Paths:    []string{"testdata/gherkin/evaluation.feature"},
			Strict:   true,
			TestingT: t,
		},
	}
	if suite.Run() != 0 {
		t.Fatal("the OpenFeature evaluation suite failed")
	}
	want := []string{"Flag not found", "Resolves boolean details", "Resolves boolean value", "Type error"}
	slices.Sort(passed)
	if !slices.Equal(passed, want) {
		t.Fatalf("passed %q, want %q", passed, want)
	}
	if len(skipped) != len(notApplicable) {
		t.Fatalf("skipped %q, want the %d scenarios that do not apply", skipped, len(notApplicable))
	}
}
