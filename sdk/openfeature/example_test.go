package openfeature_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/brownout-io/brownout/sdk"
	brownoutof "github.com/brownout-io/brownout/sdk/openfeature"
	of "github.com/open-feature/go-sdk/openfeature"
)

func Example() {
	client, err := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithDefaults(sdk.LevelFull, map[string]bool{"recommendations": true}),
		sdk.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer client.Close()

	if err := of.SetNamedProviderAndWait("example", brownoutof.NewProvider(client)); err != nil {
		panic(err)
	}
	d, _ := of.NewClient("example").BooleanValueDetails(context.Background(), "recommendations", false, of.EvaluationContext{})
	level, _ := d.FlagMetadata.GetString(brownoutof.MetaLevelName)
	fmt.Println(d.Value, level, d.Reason)
	// Output: true FULL DEFAULT
}
