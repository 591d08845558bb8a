package drift

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// JSON: a drift report is []Item encoded with encoding/json; the struct tags
// of Item and Field are the schema:
//
//	[{"fleet": "web", "service": "api", "container": "web-api-1",
//	  "container_id": "3f2a…", "slot": 1, "kind": "spec",
//	  "fields": [{"field": "image", "want": "app:v2", "have": "app:v1"}],
//	  "detail": "…"}]
//
// service is "" for a network conflict (container then names the network);
// slot is omitted when unknown; kind is one of the Kind constants; fields
// hold rendered values, secrets already Redacted.

// Text renders items for people, grouped by fleet and service in the order
// Diff sorts them; one line per item, with its fields on the lines below
// when there is more than one:
//
//	fleet web
//	  service api
//	    web-api-1  spec      image: app:v1 → app:v2
//	    web-api-2  stopped   Exited (137) 3 seconds ago
func Text(items []Item) string {
	if len(items) == 0 {
		return "in sync\n"
	}
	width := 0
	for _, it := range items {
		width = max(width, utf8.RuneCountInString(it.Container))
	}
	var b strings.Builder
	for i, it := range items {
		if i == 0 || it.Fleet != items[i-1].Fleet {
			fmt.Fprintf(&b, "fleet %s\n", orNone(it.Fleet))
		}
		if i == 0 || it.Fleet != items[i-1].Fleet || it.Service != items[i-1].Service {
			if it.Service == "" {
				b.WriteString("  networks\n")
			} else {
				fmt.Fprintf(&b, "  service %s\n", it.Service)
			}
		}
		writeItem(&b, it, width)
	}
	return b.String()
}

func writeItem(b *strings.Builder, it Item, width int) {
	pad := width - utf8.RuneCountInString(it.Container)
	head := fmt.Sprintf("    %s%s  %-10s", it.Container, strings.Repeat(" ", pad), it.Kind)
	fields := it.Fields
	summary := it.Detail
	if summary == "" && len(fields) == 1 {
		summary, fields = fieldText(fields[0]), nil
	}
	b.WriteString(strings.TrimRight(head+"  "+summary, " "))
	b.WriteByte('\n')
	indent := strings.Repeat(" ", len(head)+2)
	for _, f := range fields {
		b.WriteString(indent + fieldText(f) + "\n")
	}
}

// fieldText is "field: have → want".
func fieldText(f Field) string {
	return f.Field + ": " + value(f.Have) + " → " + value(f.Want)
}

func value(v string) string {
	const limit = 60
	if v == "" {
		return "(none)"
	}
	if utf8.RuneCountInString(v) > limit {
		return string([]rune(v)[:limit]) + "…"
	}
	return v
}

func orNone(s string) string {
	if s == "" {
		return "(unlabelled)"
	}
	return s
}

// MapText returns a copy of items with every free text (the detail, each
// field's want and have) passed through f: how redaction reaches drift
// on its way out of the process.
func MapText(items []Item, f func(string) string) []Item {
	if items == nil {
		return nil
	}
	out := make([]Item, len(items))
	for i, it := range items {
		it.Detail = f(it.Detail)
		if it.Fields != nil {
			fields := make([]Field, len(it.Fields))
			for j, fd := range it.Fields {
				fields[j] = Field{Field: fd.Field, Want: f(fd.Want), Have: f(fd.Have)}
			}
			it.Fields = fields
		}
		out[i] = it
	}
	return out
}
