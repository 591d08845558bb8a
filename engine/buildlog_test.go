package engine

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fleetd/fleetd/fleets"
)

// traceMessage is a moby.buildkit.trace message as the engine streams it:
// the StatusResponse's protobuf bytes, as a JSON (base64) string.
func traceMessage(t *testing.T, st *controlapi.StatusResponse) string {
	t.Helper()
	data, err := st.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	aux, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := json.Marshal(map[string]any{"id": auxTrace, "aux": json.RawMessage(aux)})
	if err != nil {
		t.Fatal(err)
	}
	return string(msg) + "\n"
}

func readLines(t *testing.T, stream string, secrets map[string][]byte) ([]string, streamResult, error) {
	t.Helper()
	var lines []string
	res, err := readBuildStream(strings.NewReader(stream), newTraceLog(redacting(func(l string) { lines = append(lines, l) }, secrets)))
	return lines, res, err
}

// BuildKit's status renders as `docker build --progress=plain` does:
// steps numbered as they appear, their output line by line (a line split
// across messages joined), CACHED, DONE with the time taken, ERROR.
func TestTraceLog(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	stream := traceMessage(t, &controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{
		{Digest: "sha256:a", Name: "[internal] load remote build context", Started: ts(0)},
		{Digest: "sha256:b", Name: "[1/2] COPY app /app"}, // queued: not shown yet
	}}) + traceMessage(t, &controlapi.StatusResponse{
		Vertexes: []*controlapi.Vertex{
			{Digest: "sha256:a", Name: "[internal] load remote build context", Started: ts(0), Completed: ts(1500 * time.Millisecond)},
			{Digest: "sha256:b", Name: "[1/2] COPY app /app", Cached: true, Started: ts(0), Completed: ts(0)},
			{Digest: "sha256:c", Name: "[2/2] RUN make", Started: ts(2 * time.Second)},
		},
		Logs: []*controlapi.VertexLog{{Vertex: "sha256:c", Msg: []byte("compiling\nlink")}},
	}) + traceMessage(t, &controlapi.StatusResponse{
		Logs: []*controlapi.VertexLog{{Vertex: "sha256:c", Msg: []byte("ing\n")}},
	}) + traceMessage(t, &controlapi.StatusResponse{
		Vertexes: []*controlapi.Vertex{{Digest: "sha256:c", Name: "[2/2] RUN make", Started: ts(2 * time.Second), Completed: ts(3 * time.Second), Error: "exit code: 2"}},
	}) + `{"id":"moby.image.id","aux":{"ID":"sha256:feed"}}` + "\n"
	lines, res, err := readLines(t, stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"#1 [internal] load remote build context",
		"#1 DONE 1.5s",
		"#2 [1/2] COPY app /app",
		"#2 CACHED",
		"#3 [2/2] RUN make",
		"#3 compiling",
		"#3 linking",
		"#3 ERROR: exit code: 2",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if res.ImageID != "sha256:feed" {
		t.Errorf("image ID %q", res.ImageID)
	}
}

// The classic builder's output goes out line by line, an unfinished last
// line at the end; its error ends the stream.
func TestClassicLog(t *testing.T) {
	stream := `{"stream":"Step 1/2 : FROM scratch\n ---\u003e \n"}` + "\n" +
		`{"stream":"Step 2/2 : COPY a"}` + "\n" + `{"stream":" /a\n"}` + "\n" +
		`{"aux":{"ID":"sha256:beef"}}` + "\n" + `{"stream":"Successfully built beef"}` + "\n"
	lines, res, err := readLines(t, stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "Step 1/2 : FROM scratch\n ---> \nStep 2/2 : COPY a /a\nSuccessfully built beef"
	if got := strings.Join(lines, "\n"); got != want || res.ImageID != "sha256:beef" {
		t.Errorf("lines:\n%s\nimage %q", got, res.ImageID)
	}
	_, _, err = readLines(t, `{"stream":"Step 1/1 : COPY x /\n"}`+"\n"+`{"errorDetail":{"message":"COPY failed: x: not found"},"error":"COPY failed: x: not found"}`+"\n", nil)
	if err == nil || err.Error() != "COPY failed: x: not found" {
		t.Errorf("err = %v, want the stream's error", err)
	}
}

// A build secret's contents, whole or any line of it, never reach the
// log; short ones are left alone.
func TestRedacting(t *testing.T) {
	secrets := map[string][]byte{"key": []byte("line-one\nline-two\n"), "tiny": []byte("ab")}
	stream := `{"stream":"echo line-one\nline-one\nline-two\nabc\n"}` + "\n"
	lines, _, err := readLines(t, stream, secrets)
	if err != nil {
		t.Fatal(err)
	}
	want := "echo [redacted]\n[redacted]\n[redacted]\nabc"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("lines:\n%s\nwant:\n%s", got, want)
	}
	err = redactErr(errorString("RUN failed: line-one"), secrets)
	if err.Error() != "RUN failed: [redacted]" {
		t.Errorf("err = %v", err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestHookOutputRedacted(t *testing.T) {
	h := fleets.Hook{Environment: map[string]string{"DB_PASSWORD": "hunter2", "PORT": "8080"}}
	got := redact("login with hunter2 on 8080 failed", secretWords(hookSecrets(h)))
	if got != "login with [redacted] on 8080 failed" {
		t.Errorf("hook output %q: want the password blanked, the port kept", got)
	}
}

func TestChooseBuilder(t *testing.T) {
	kit := types.Ping{APIVersion: "1.41", BuilderVersion: build.BuilderBuildKit, OSType: "linux"}
	for _, tc := range []struct {
		name, env string
		ping      types.Ping
		client    string
		b         fleets.Build
		want      string // a part of the reason; "" for BuildKit
		err       bool
	}{
		{name: "BuildKit", ping: kit, client: "1.41"},
		{name: "DOCKER_BUILDKIT=0", env: "0", want: "DOCKER_BUILDKIT=0"},
		{name: "DOCKER_BUILDKIT=1", env: "1", ping: kit, client: "1.41"},
		{name: "DOCKER_BUILDKIT not a boolean", env: "maybe", err: true},
		{name: "old API", ping: types.Ping{APIVersion: "1.38"}, client: "1.41", want: "predates BuildKit sessions"},
		{name: "old client", ping: kit, client: "1.38", want: "API 1.38"},
		{name: "Windows without BuildKit", ping: types.Ping{APIVersion: "1.41", OSType: "windows"}, client: "1.41", want: "Windows"},
		{name: "shm_size before 1.42", ping: kit, client: "1.41", b: fleets.Build{ShmSize: 1 << 20}, want: "build.shm_size"},
		{name: "shm_size from 1.42", ping: types.Ping{APIVersion: "1.44", BuilderVersion: build.BuilderBuildKit}, client: "1.44", b: fleets.Build{ShmSize: 1 << 20}},
		{name: "another network", ping: kit, client: "1.41", b: fleets.Build{Network: "shop_default"}, want: "build.network"},
		{name: "host network", ping: kit, client: "1.41", b: fleets.Build{Network: "host"}},
	} {
		got, err := chooseBuilder(tc.env, tc.ping, tc.client, tc.b)
		if (err != nil) != tc.err || (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, %v; want a reason containing %q, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
