// Package review compares two revisions of the fleet repository host by
// host, for pull requests (`fleetd plan --base/--head`, `validate --base`):
// Compare is a pure function of what fleets.Load returned for each side and
// each host, and Report renders as text, Markdown and JSON. It observes no
// engine and imports no adapter.
package review
