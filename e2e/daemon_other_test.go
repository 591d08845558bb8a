//go:build !linux

package e2e

import "errors"

type privateDaemon struct{}

func startDaemon() (*privateDaemon, error) {
	return nil, errors.New("a private dockerd needs Linux; set " + dockerModeEnv + "=ambient to use DOCKER_HOST, a daemon nobody else uses")
}

func (*privateDaemon) stop() {}
