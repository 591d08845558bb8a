package review

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/fleetd/fleetd/reconcile"
)

// The renderings of a Report. Both walk the review in its own order (hosts,
// fleets, services, fields, warnings are sorted by Compare), so the
// same revisions give the same bytes.

// String renders the review as text for a terminal.
func (rv Report) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "fleetd plan: %s → %s\n", revString(rv.Base), revString(rv.Head))
	writeAccessText(&sb, rv.HostAccess)
	if !rv.Valid {
		sb.WriteString("\nhead is INVALID: a host applies none of it while a fleet fails to load (hosts keep running base)\n")
		for _, p := range rv.Problems {
			fmt.Fprintf(&sb, "  %s\n", p)
		}
	}
	for _, h := range rv.Hosts {
		sb.WriteString("\n")
		writeHostText(&sb, h)
	}
	fmt.Fprintf(&sb, "\n%s\n", rv.summaryLine())
	return sb.String()
}

func revString(r RevisionRef) string {
	s := refName(r)
	if r.Commit != "" && s != shortCommit(r.Commit) {
		s += " (" + shortCommit(r.Commit) + ")"
	}
	return s
}

// refName is the ref as given, or the short commit when the ref is one.
func refName(r RevisionRef) string {
	if len(r.Ref) >= 7 && strings.HasPrefix(r.Commit, r.Ref) {
		return shortCommit(r.Commit)
	}
	return r.Ref
}

func shortCommit(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

// summaryLine counts the hosts that change.
func (rv Report) summaryLine() string {
	changed, blocked, warnings := 0, 0, 0
	for _, h := range rv.Hosts {
		if h.changed() {
			changed++
		}
		if len(h.Blocked) > 0 {
			blocked++
		}
		warnings += len(h.Warnings)
	}
	s := fmt.Sprintf("%d %s: %d with changes", len(rv.Hosts), reconcile.Plural(len(rv.Hosts), "host", "hosts"), changed)
	if blocked > 0 {
		s += fmt.Sprintf(", %d blocked by the invalid head", blocked)
	}
	if warnings > 0 {
		s += fmt.Sprintf(", %d %s", warnings, reconcile.Plural(warnings, "warning", "warnings"))
	}
	return s + "."
}

func (h HostReview) changed() bool { return len(h.Fleets) > 0 || len(h.Warnings) > 0 }

// hostTitle is the host's name, labels and inventory change.
func hostTitle(h HostReview) string {
	s := h.Host.Name
	if len(h.Host.Labels) > 0 {
		s += " [" + labelString(h.Host.Labels) + "]"
	}
	var notes []string
	if h.Host.Name == SwarmHost && h.Inventory == "" {
		notes = append(notes, "the swarm fleets, applied once per swarm by its active agent")
	}
	switch h.Inventory {
	case InventoryAdded:
		notes = append(notes, "added to the inventory; compared as if it ran base")
	case InventoryRemoved:
		notes = append(notes, "removed from the inventory; its agent keeps its own configuration")
	}
	if h.BaseLabels != nil {
		notes = append(notes, "labels at base: "+orNone(labelString(h.BaseLabels)))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func writeHostText(sb *strings.Builder, h HostReview) {
	fmt.Fprintf(sb, "host %s", hostTitle(h))
	if !h.changed() && len(h.Blocked) == 0 {
		sb.WriteString(": no changes\n")
		return
	}
	sb.WriteString("\n")
	if len(h.Blocked) > 0 {
		fmt.Fprintf(sb, "  x blocked: %s invalid at head; this host applies nothing of the head until fixed\n", strings.Join(h.Blocked, ", "))
	}
	for _, f := range h.Fleets {
		fmt.Fprintf(sb, "  %s fleet %s%s\n", changeMark(f.Change), f.Name, reasonSuffix(f.Reason))
		for _, u := range f.Updates {
			fmt.Fprintf(sb, "      %s (no recreate)\n", fieldText(u))
		}
		for _, s := range f.Services {
			writeServiceText(sb, s)
		}
	}
	for _, w := range h.Warnings {
		fmt.Fprintf(sb, "  ! %s%s: %s\n", warningWhere(w), w.Kind, w.Message)
	}
}

func changeMark(c Change) string {
	switch c {
	case Added:
		return "+"
	case Removed:
		return "-"
	case Invalid:
		return "x"
	}
	return "~"
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func warningWhere(w Warning) string {
	switch {
	case w.Service != "":
		return w.Fleet + "/" + w.Service + " "
	case w.Fleet != "":
		return w.Fleet + " "
	}
	return ""
}

func writeServiceText(sb *strings.Builder, s ServiceReview) {
	if s.Change != Changed {
		fmt.Fprintf(sb, "      %s %s: %s%s\n", changeMark(s.Change), s.Name, serviceBrief(s), parenthesized(s.Reason))
		return
	}
	fmt.Fprintf(sb, "      ~ %s\n", s.Name)
	if rc := s.Recreate; rc != nil {
		fmt.Fprintf(sb, "          recreate %d %s:\n", rc.Containers, reconcile.Plural(rc.Containers, "container", "containers"))
		for _, f := range rc.Fields {
			fmt.Fprintf(sb, "            %s\n", fieldText(f))
		}
		for _, f := range rc.Build {
			fmt.Fprintf(sb, "            %s\n", fieldText(f))
		}
		fmt.Fprintf(sb, "          rollout: %s\n", rolloutText(rc.Rollout, rc.Containers, plain))
	}
	if s.Replicas.From != s.Replicas.To {
		fmt.Fprintf(sb, "          scale: %d → %d\n", s.Replicas.From, s.Replicas.To)
	}
	if len(s.Updates) > 0 {
		sb.WriteString("          no recreate:\n")
		for _, f := range s.Updates {
			fmt.Fprintf(sb, "            %s\n", fieldText(f))
		}
	}
}

// serviceBrief is an added or removed service's image and replicas.
func serviceBrief(s ServiceReview) string {
	n := shownReplicas(s)
	return fmt.Sprintf("%s, %d %s", s.Image, n, reconcile.Plural(n, "replica", "replicas"))
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func fieldText(f FieldChange) string {
	return f.Field + ": " + orNone(f.From) + " → " + orNone(f.To)
}

// rolloutText describes the rolling update: batches, order and why it was
// forced, failure action, delay and monitor; esc writes each value.
func rolloutText(r RolloutReview, containers int, esc func(string) string) string {
	batch := fmt.Sprintf("%d %s of %d", r.Batches, reconcile.Plural(r.Batches, "batch", "batches"), r.Parallelism)
	if r.Parallelism == 0 || r.Parallelism >= containers {
		batch = fmt.Sprintf("1 batch of %d", containers)
	}
	order := esc(r.Order)
	if r.Forced != "" {
		order += " (forced: " + esc(r.Forced) + "; " + esc(r.RequestedOrder) + " requested)"
	}
	s := fmt.Sprintf("%s, %s, %s %s, monitor %s", batch, order, esc("failure_action"), esc(r.FailureAction), esc(r.Monitor))
	if r.Delay != "0s" {
		s += ", delay " + esc(r.Delay)
	}
	return s
}

// Markdown renders the review for a pull-request comment: a table of hosts
// × changes, then one collapsible section per host that changes.
func (rv Report) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### fleetd plan: %s → %s\n\n", revMarkdown(rv.Base), revMarkdown(rv.Head))
	writeAccessMarkdown(&sb, rv.HostAccess)
	if !rv.Valid {
		sb.WriteString("> [!CAUTION]\n> **The head is invalid.** A host applies none of it while a fleet fails to load; hosts keep running the base.\n>\n")
		for _, p := range rv.Problems {
			fmt.Fprintf(&sb, "> - %s\n", code(p.String()))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("| host | fleets | services | recreated | scaled | no recreate | warnings |\n")
	sb.WriteString("|---|---|---|---|---|---|---|\n")
	for _, h := range rv.Hosts {
		writeSummaryRow(&sb, h)
	}
	fmt.Fprintf(&sb, "\n%s\n", rv.summaryLine())
	for _, h := range rv.Hosts {
		if h.changed() || len(h.Blocked) > 0 {
			writeHostMarkdown(&sb, h)
		}
	}
	return sb.String()
}

func revMarkdown(r RevisionRef) string {
	s := code(refName(r))
	if r.Commit != "" && refName(r) != shortCommit(r.Commit) {
		s += " (" + code(shortCommit(r.Commit)) + ")"
	}
	return s
}

// Every value the Markdown rendering writes goes through code (a code
// span), text (Markdown text) or htmlText (inside HTML): values come from
// the repository, and a value must not break out of its place — end a
// list item or a table cell, open an HTML comment that hides the rest of
// the comment, run a script, start emphasis or a link. None of them keeps
// a line break: oneLine shows it as ␤.

// oneLine shows the line breaks in s (CR, LF, CRLF) as ␤, and NUL as
// U+FFFD, as Markdown renders it: a value stays on its line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", "␤", "\n", "␤", "\r", "␤", "\x00", "\uFFFD").Replace(s)
}

// code is s as a Markdown code span, whatever backticks it holds. Inside
// a code span nothing is markup (HTML included); only a line break or a
// backtick could end it, and neither can.
func code(s string) string {
	if s == "" {
		return "*(none)*"
	}
	s = oneLine(s)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	// A space is stripped from each end of a span that has both, and a
	// backtick at an end would lengthen the fence: pad with one more.
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") ||
		strings.HasPrefix(s, " ") && strings.HasSuffix(s, " ") && strings.Trim(s, " ") != "" {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// text is s as Markdown text on one line: HTML's special characters as
// entities, Markdown's inline punctuation backslash-escaped, so that it
// renders as written. An _ between two letters or digits is left as it
// is (it cannot start or end emphasis there: allow_mass_prune). (A line's
// first characters — #, -, >, digits — are never a value's: every line
// starts with the rendering's own markup.)
func text(s string) string {
	rs := []rune(oneLine(s))
	var b strings.Builder
	for i, r := range rs {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '_' && i > 0 && i < len(rs)-1 && isWordRune(rs[i-1]) && isWordRune(rs[i+1]):
			b.WriteRune(r)
		case strings.ContainsRune("\\`*_[]|~$!#", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func plain(s string) string { return s }

// htmlText is s inside an HTML block (the <summary> of a host), where
// Markdown is not interpreted: HTML's special characters as entities.
func htmlText(s string) string { return htmlEscape(oneLine(s)) }

func writeSummaryRow(sb *strings.Builder, h HostReview) {
	c := h.Counts
	name := text(h.Host.Name)
	if len(h.Blocked) > 0 {
		name += " ⛔ blocked"
	}
	fleets := signed(c.FleetsAdded, c.FleetsRemoved, c.FleetsChanged)
	services := signed(c.ServicesAdded, c.ServicesRemoved, 0)
	recreated := "·"
	if c.Recreated > 0 {
		recreated = fmt.Sprintf("%d (%d %s)", c.Recreated, c.Containers, reconcile.Plural(c.Containers, "container", "containers"))
	}
	warnings := "·"
	if c.Warnings > 0 {
		warnings = fmt.Sprintf("⚠️ %d", c.Warnings)
	}
	fmt.Fprintf(sb, "| %s | %s | %s | %s | %s | %s | %s |\n", name, fleets, services, recreated, count(c.Scaled), count(c.Updated), warnings)
}

func signed(added, removed, changed int) string {
	var parts []string
	if added > 0 {
		parts = append(parts, fmt.Sprintf("+%d", added))
	}
	if removed > 0 {
		parts = append(parts, fmt.Sprintf("−%d", removed))
	}
	if changed > 0 {
		parts = append(parts, fmt.Sprintf("~%d", changed))
	}
	if len(parts) == 0 {
		return "·"
	}
	return strings.Join(parts, " ")
}

func count(n int) string {
	if n == 0 {
		return "·"
	}
	return fmt.Sprint(n)
}

func writeHostMarkdown(sb *strings.Builder, h HostReview) {
	fmt.Fprintf(sb, "\n<details><summary><b>%s</b>%s</summary>\n\n", htmlText(h.Host.Name), htmlText(strings.TrimPrefix(hostTitle(h), h.Host.Name)))
	if len(h.Blocked) > 0 {
		fmt.Fprintf(sb, "⛔ **Blocked**: %s invalid at head; this host applies nothing of the head until fixed.\n\n", codeList(h.Blocked))
	}
	if len(h.Warnings) > 0 {
		for _, w := range h.Warnings {
			where := strings.TrimSpace(warningWhere(w))
			if where != "" {
				where = code(where) + " "
			}
			fmt.Fprintf(sb, "- ⚠️ %s**%s**: %s\n", where, text(w.Kind), text(w.Message))
		}
		sb.WriteString("\n")
	}
	for _, f := range h.Fleets {
		fmt.Fprintf(sb, "**%s fleet %s**%s\n\n", changeWord(f.Change), code(f.Name), reasonSuffix(text(f.Reason)))
		for _, u := range f.Updates {
			fmt.Fprintf(sb, "- %s (no recreate)\n", fieldMarkdown(u))
		}
		for _, s := range f.Services {
			writeServiceMarkdown(sb, s)
		}
		if len(f.Updates)+len(f.Services) > 0 {
			sb.WriteString("\n")
		}
	}
	sb.WriteString("</details>\n")
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func codeList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = code(n)
	}
	return strings.Join(out, ", ")
}

func changeWord(c Change) string { return changeEmoji(c) + " " + string(c) }

// changeEmoji marks a change in Markdown, where +, - and ~ would start
// a list or strike text through.
func changeEmoji(c Change) string {
	switch c {
	case Added:
		return "➕"
	case Removed:
		return "➖"
	case Invalid:
		return "⛔"
	}
	return "🔄"
}

func writeServiceMarkdown(sb *strings.Builder, s ServiceReview) {
	if s.Change != Changed {
		fmt.Fprintf(sb, "- %s %s: %s%s\n", changeEmoji(s.Change), code(s.Name), code(s.Image), replicasReason(s))
		return
	}
	fmt.Fprintf(sb, "- %s %s\n", changeEmoji(Changed), code(s.Name))
	if rc := s.Recreate; rc != nil {
		fmt.Fprintf(sb, "  - **recreate %d %s**\n", rc.Containers, reconcile.Plural(rc.Containers, "container", "containers"))
		for _, f := range rc.Fields {
			fmt.Fprintf(sb, "    - %s\n", fieldMarkdown(f))
		}
		for _, f := range rc.Build {
			fmt.Fprintf(sb, "    - %s\n", fieldMarkdown(f))
		}
		fmt.Fprintf(sb, "  - rollout: %s\n", rolloutText(rc.Rollout, rc.Containers, text))
	}
	if s.Replicas.From != s.Replicas.To {
		fmt.Fprintf(sb, "  - **scale** %d → %d\n", s.Replicas.From, s.Replicas.To)
	}
	if len(s.Updates) > 0 {
		sb.WriteString("  - no recreate:\n")
		for _, f := range s.Updates {
			fmt.Fprintf(sb, "    - %s\n", fieldMarkdown(f))
		}
	}
}

func replicasReason(s ServiceReview) string {
	n := shownReplicas(s)
	return fmt.Sprintf(", %d %s%s", n, reconcile.Plural(n, "replica", "replicas"), parenthesized(text(s.Reason)))
}

func fieldMarkdown(f FieldChange) string {
	return code(f.Field) + ": " + code(f.From) + " → " + code(f.To)
}

// shownReplicas is the replica count an added or removed service is shown
// with: what it will run, or what it ran.
func shownReplicas(s ServiceReview) int {
	if s.Change == Removed {
		return s.Replicas.From
	}
	return s.Replicas.To
}
