package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestUIOnAPIListenerOnly: the dashboard is served on the API listener,
// GET and POST, without the bearer token (it has its own login), and
// never on the webhook listener.
func TestUIOnAPIListenerOnly(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	s := New(Config{ReadToken: "read", APIToken: "api", WebhookAddr: "127.0.0.1:0", UI: ui}, nil)
	for _, method := range []string{"GET", "POST"} {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(method, "/ui/fleet?name=x", nil))
		if w.Code != http.StatusTeapot {
			t.Errorf("%s /ui/ on the API listener: %d, want the dashboard's answer", method, w.Code)
		}
		w = httptest.NewRecorder()
		s.WebhookHandler().ServeHTTP(w, httptest.NewRequest(method, "/ui/", nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("%s /ui/ on the webhook listener: %d, want 404", method, w.Code)
		}
	}
	w := httptest.NewRecorder()
	New(Config{}, nil).Handler().ServeHTTP(w, httptest.NewRequest("GET", "/ui/", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("/ui/ without a dashboard: %d, want 404", w.Code)
	}
}
