package sdk_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/brownout-io/brownout/sdk"
)

// discard keeps examples' output to what they print.
var discard = slog.New(slog.DiscardHandler)

func Example() {
	client, err := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithToken("sdk-token"),
		sdk.WithDefaults(sdk.LevelFull, map[string]bool{"recommendations": true}),
		sdk.WithLogger(discard),
	)
	if err != nil {
		panic(err) // only invalid arguments fail Connect
	}
	defer client.Close()

	// Until the controller answers, the defaults are served.
	fmt.Println(client.Level(), client.Enabled("recommendations"), client.Enabled("analytics"))
	// Output: FULL true false
}

func ExampleClient_Shed() {
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "shop", "shop-1",
		sdk.WithLogger(discard), sdk.WithRetryAfter(10*time.Second))
	defer client.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkout", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// Recommendations are optional: from ESSENTIAL on, they answer 503.
	mux.Handle("GET /recommendations", client.Shed(sdk.LevelEssential, http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "[]") })))
	// Count every request and 5xx for the reports.
	_ = http.Handler(client.Middleware(mux))
	fmt.Println("level:", client.Level())
	// Output: level: FULL
}

func ExampleClient_OnChange() {
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithLogger(discard))
	defer client.Close()

	client.OnChange(func(old, new sdk.State) {
		if new.Level > old.Level {
			slog.Warn("degrading", "from", old.Level, "to", new.Level, "cause", new.Cause)
		}
	})
	fmt.Println("watching")
	// Output: watching
}

func ExampleFallTo() {
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithLogger(discard),
		sdk.WithStateFile("/var/lib/checkout/brownout.json"),
		// Controller gone for 10 minutes: serve at least ESSENTIAL, with
		// analytics off unless the controller said otherwise for that level.
		sdk.WithStalenessPolicy(sdk.FallTo(sdk.LevelEssential, 10*time.Minute)),
		sdk.WithLevelFlags(sdk.LevelEssential, map[string]bool{"analytics": false}),
	)
	defer client.Close()
	fmt.Println(client.State().Source)
	// Output: defaults
}

func ExampleClient_Register() {
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithLogger(discard))
	defer client.Close()
	// Any component.Reporter, such as the SDK's circuit breakers, travels
	// with every report and shows on the dashboard next to the level.
	err := client.Register("payments-db", dbPool{})
	fmt.Println(err)
	// Output: <nil>
}

func ExampleClient_Transport() {
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "worker", "worker-1",
		sdk.WithLogger(discard))
	defer client.Close()
	// Calls made through this client count as requests; transport errors
	// and 5xx answers as errors.
	upstream := &http.Client{Transport: client.Transport(nil), Timeout: 5 * time.Second}
	_ = upstream
	fmt.Println(client.Stats().ReportsDropped)
	// Output: 0
}

func ExampleClient_Record() {
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "worker", "worker-1",
		sdk.WithLogger(discard))
	defer client.Close()
	for _, job := range []func() error{
		func() error { return nil },
		func() error { return fmt.Errorf("payment provider timed out") },
	} {
		client.Record(job()) // counted in the next report: 2 requests, 1 error
	}
	fmt.Println("recorded")
	// Output: recorded
}

func ExampleWithForceFile() {
	// echo 3 > /etc/brownout/force   forces MAINTENANCE on this host within
	// a second; rm the file to release it. BROWNOUT_FORCE_LEVEL=3 does the
	// same for a process started with it.
	client, _ := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithLogger(discard), sdk.WithForceFile("/etc/brownout/force"))
	defer client.Close()
	fmt.Println(client.Level())
	// Output: FULL
}
