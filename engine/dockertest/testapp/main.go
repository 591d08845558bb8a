// Command testapp is the application inside the dockertest image. It is a
// static, stdlib-only HTTP server whose behaviour (version, health, slow
// start, crash, degradation) is set by environment variables, so that engine
// tests can drive every container state without a shell in the image.
//
//	VERSION          body of GET / (default: the version baked in at build time)
//	PORT             listen port (default 8080)
//	HEALTHY          "false" makes /healthz answer 500 from the start
//	START_DELAY      wait this long before listening (e.g. "3s")
//	CRASH_AFTER      exit with code 3 after this long
//	UNHEALTHY_AFTER  /healthz answers 500 after this long
//
// "testapp -health" is the image's exec-form HEALTHCHECK; "testapp -version"
// prints the baked-in version. SIGTERM and SIGINT exit 0 at once.
//
// "testapp -hook" is a lifecycle hook for exec, also set by environment:
//
//	HOOK_FILE     write HOOK_CONTENT and " uid=<its uid>" to this file
//	              (relative to its working directory)
//	HOOK_SLEEP    then sleep this long
//	HOOK_EXIT     then exit with this code (default 0), printing
//	              "hook failing with <code>" to stderr first
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// buildVersion is set with -ldflags "-X main.buildVersion=v2" so that images
// built for different versions differ in content.
var buildVersion = "v1"

// crashCode is the exit status for CRASH_AFTER; tests assert on it.
const crashCode = 3

func main() {
	health := flag.Bool("health", false, "probe /healthz and exit 0 if healthy, 1 otherwise")
	version := flag.Bool("version", false, "print the built-in version and exit")
	hook := flag.Bool("hook", false, "run as a lifecycle hook (HOOK_* variables)")
	flag.Parse()

	port := env("PORT", "8080")
	switch {
	case *version:
		fmt.Println(buildVersion)
	case *hook:
		if err := runHook(); err != nil {
			fmt.Fprintln(os.Stderr, "hook:", err)
			os.Exit(1)
		}
	case *health:
		if err := probe(port); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
	default:
		if err := serve(port); err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
			os.Exit(1)
		}
	}
}

func runHook() error {
	fmt.Println("hook: started")
	if file := os.Getenv("HOOK_FILE"); file != "" {
		content := fmt.Sprintf("%s uid=%d", os.Getenv("HOOK_CONTENT"), os.Getuid())
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			return err
		}
		fmt.Println("hook: wrote", file)
	}
	sleep, err := durationEnv("HOOK_SLEEP")
	if err != nil {
		return err
	}
	time.Sleep(sleep)
	if code, _ := strconv.Atoi(os.Getenv("HOOK_EXIT")); code != 0 {
		fmt.Fprintln(os.Stderr, "hook failing with", code)
		os.Exit(code)
	}
	return nil
}

func probe(port string) error {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func serve(port string) error {
	// Installed first: as PID 1 in a container, a signal with no handler is
	// ignored, and "docker stop" would wait for its full timeout.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		fmt.Println("testapp: received", s, "- exiting")
		os.Exit(0)
	}()

	startDelay, err := durationEnv("START_DELAY")
	if err != nil {
		return err
	}
	crashAfter, err := durationEnv("CRASH_AFTER")
	if err != nil {
		return err
	}
	unhealthyAfter, err := durationEnv("UNHEALTHY_AFTER")
	if err != nil {
		return err
	}
	healthy, err := strconv.ParseBool(env("HEALTHY", "true"))
	if err != nil {
		return fmt.Errorf("HEALTHY: %w", err)
	}

	var ok atomic.Bool
	ok.Store(healthy)
	if crashAfter > 0 {
		time.AfterFunc(crashAfter, func() {
			fmt.Println("testapp: CRASH_AFTER elapsed - exiting with code", crashCode)
			os.Exit(crashCode)
		})
	}
	if unhealthyAfter > 0 {
		time.AfterFunc(unhealthyAfter, func() { ok.Store(false) })
	}

	version := env("VERSION", buildVersion)
	hostname, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Testapp-Host", hostname)
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ok.Load() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	time.Sleep(startDelay)
	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
	}
	fmt.Printf("testapp %s listening on :%s\n", version, port)
	return srv.ListenAndServe()
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func durationEnv(key string) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}
