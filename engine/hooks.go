package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// What the error of a failing hook keeps of its output: the last lines,
// bounded in number and size, as docker compose keeps them.
const (
	hookTailLines = 5
	hookTailBytes = 1024
)

// execPoll is how often ExecHook asks whether an exec whose output ended
// has exited, when the daemon does not say so at once.
const execPoll = 20 * time.Millisecond

// ExecHook runs a lifecycle hook in a managed container as docker compose
// runs post_start and pre_stop hooks (pkg/compose/hook.go): an exec of the
// hook's command with its user, privileges, working directory and
// environment (added to the container's), started attached to its output,
// then inspected for its exit code. The container must be running, not
// paused or restarting, else the error wraps reconcile.ErrNotRunning. An
// exit code other than 0 is an error naming the hook (name), the container
// and the code, with the last lines of the hook's output (its stderr's,
// else its stdout's). The run is bounded by timeout (0: by ctx only), a
// Timeout error; Docker has no call that ends an exec, so such a hook may
// still be running in the container.
func (d *Docker) ExecHook(ctx context.Context, id, name string, hook fleets.Hook, timeout time.Duration) error {
	return d.withManaged(ctx, "run hook in", id, func(ctr container.InspectResponse) error {
		if st := ctr.State; st == nil || !st.Running || st.Paused || st.Restarting {
			return fmt.Errorf("%s: container is %s: %w", name, stateName(ctr.State), reconcile.ErrNotRunning)
		}
		hookCtx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			hookCtx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		code, output, err := d.runExec(hookCtx, id, hook)
		output = redact(output, secretWords(hookSecrets(hook)))
		switch {
		case err != nil && ctx.Err() == nil && hookCtx.Err() != nil:
			return fmt.Errorf("%s: %w after %s (Docker cannot end an exec: it may still run)", name, ErrWaitTimeout, timeout)
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		case code != 0 && output != "":
			return fmt.Errorf("%s exited with code %d: %s", name, code, output)
		case code != 0:
			return fmt.Errorf("%s exited with code %d", name, code)
		}
		return nil
	})
}

// hookSecrets are the values of the hook's environment variables whose
// names look secret, as plans hide them: a hook that prints one must not
// put it in an error, a log or a notification.
func hookSecrets(h fleets.Hook) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range h.Environment {
		if drift.LooksSecret(k) {
			out[k] = []byte(v)
		}
	}
	return out
}

// runExec runs hook in container id and returns its exit code and the
// tail of its output.
func (d *Docker) runExec(ctx context.Context, id string, hook fleets.Hook) (code int, output string, err error) {
	created, err := d.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User:         hook.User,
		Privileged:   hook.Privileged,
		WorkingDir:   hook.WorkingDir,
		Env:          EnvList(hook.Environment),
		Cmd:          hook.Command,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return 0, "", fmt.Errorf("create exec: %w", err)
	}
	// Attaching starts the exec (POST /exec/{id}/start, hijacked), so its
	// output is read from its first byte.
	attach, err := d.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, "", fmt.Errorf("start exec: %w", err)
	}
	defer attach.Close()
	var stdout, stderr outputTail
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&stdout, &stderr, attach.Reader)
		copied <- err
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		attach.Close() // unblocks the copy
		<-copied
		return 0, "", ctx.Err()
	}
	if err != nil {
		return 0, "", fmt.Errorf("read exec output: %w", err)
	}
	output = stderr.String()
	if output == "" {
		output = stdout.String()
	}
	for {
		ins, err := d.cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return 0, "", fmt.Errorf("inspect exec: %w", err)
		}
		if !ins.Running {
			return ins.ExitCode, output, nil
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(execPoll):
		}
	}
}

func stateName(st *container.State) string {
	switch {
	case st == nil || st.Status == "":
		return "not running"
	case st.Paused:
		return "paused"
	}
	return st.Status
}

// outputTail keeps the last lines written to it (hookTailLines, at most
// hookTailBytes in all), for an error message: one line, the lines joined
// with " | ", blank ones left out.
type outputTail struct {
	lines   []string
	partial []byte
}

func (t *outputTail) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.partial = append(t.partial, p...)
			if over := len(t.partial) - hookTailBytes; over > 0 {
				t.partial = append(t.partial[:0], t.partial[over:]...)
			}
			break
		}
		t.push(string(t.partial) + string(p[:i]))
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (t *outputTail) push(line string) {
	// A progress bar rewinds with \r: keep what it showed last.
	line = strings.TrimRight(line, "\r")
	if i := strings.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	if line = strings.TrimSpace(line); line == "" {
		return
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > hookTailLines {
		t.lines = t.lines[len(t.lines)-hookTailLines:]
	}
}

func (t *outputTail) String() string {
	lines := t.lines
	if last := strings.TrimSpace(string(t.partial)); last != "" {
		lines = append(lines[:len(lines):len(lines)], last)
	}
	s := strings.Join(lines, " | ")
	if len(s) > hookTailBytes {
		s = "…" + s[len(s)-hookTailBytes:]
	}
	return strings.ToValidUTF8(s, "")
}
