package server_test

import "github.com/brownout-io/brownout/internal/app"

type appConfig = app.Config
