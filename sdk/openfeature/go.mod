module github.com/brownout-io/brownout/sdk/openfeature

go 1.26.0

require (
	github.com/brownout-io/brownout v0.0.0
	github.com/open-feature/go-sdk v1.20.0
	nhooyr.io/websocket v1.8.17
)

require go.uber.org/mock v0.6.0 // indirect

replace github.com/brownout-io/brownout => ../..
