// Package sdkcontract runs the SDK against the real controller (router,
// control loop, SQLite) in-process. It lives in the root module so that the
// sdk module never requires the controller's module or its dependencies.
package sdkcontract
