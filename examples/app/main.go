// Command app is the example application the fleets in examples/fleets run.
// It is built into a static binary and copied into FROM scratch images, so the
// example needs no registry. One binary, three modes:
//
//	app -mode store -data /data             a tiny counter store persisted in a volume
//	app -mode web -store http://store:8080  a web page that counts visits in the store
//	app -mode hello                         a greeting from $GREETING
//	app -health                             exit 0 when the local server answers /healthz
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "hello", "store, web or hello")
	addr := flag.String("addr", ":8080", "listen address")
	data := flag.String("data", "/data", "store: directory of the counter file")
	store := flag.String("store", "http://store:8080", "web: URL of the store")
	health := flag.Bool("health", false, "check the local server's /healthz and exit")
	flag.Parse()

	if *health {
		os.Exit(checkHealth(*addr))
	}
	var h http.Handler
	switch *mode {
	case "store":
		h = newStore(*data)
	case "web":
		h = newWeb(*store)
	case "hello":
		h = hello()
	default:
		log.Fatalf("unknown -mode %q", *mode)
	}
	serve(*addr, h)
}

func serve(addr string, h http.Handler) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", h)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("listening on %s", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func checkHealth(addr string) int {
	port := addr[strings.LastIndex(addr, ":")+1:]
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

// store keeps one counter in a file under dir: POST /incr adds one and
// returns the new value.
type store struct {
	mu   sync.Mutex
	path string
}

func newStore(dir string) *store { return &store{path: filepath.Join(dir, "counter")} }

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if b, err := os.ReadFile(s.path); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if r.Method == http.MethodPost {
		n++
		if err := os.WriteFile(s.path, []byte(strconv.Itoa(n)), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	fmt.Fprintln(w, n)
}

func newWeb(storeURL string) http.Handler {
	client := http.Client{Timeout: 2 * time.Second}
	host, _ := os.Hostname()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		resp, err := client.Post(storeURL+"/incr", "text/plain", nil)
		if err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		n, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(w, "%s from %s: visit %s", os.Getenv("GREETING"), host, n)
	})
}

func hello() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, os.Getenv("GREETING"))
	})
}
