package notify

import (
	"strings"

	"github.com/slack-go/slack"
)

// slackBlocks renders m for Slack, phone first: a header with what
// happened, a line with where and which revision, the message, the reason
// and drift as code blocks, and the small print as context.
func slackBlocks(m Message) []slack.Block {
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(title(m), 150), true, false)),
	}
	var fields []*slack.TextBlockObject
	if w := where(m); w != "" {
		fields = append(fields, mrkdwn("*Where*\n"+escape(w)))
	}
	if rev := revisionText(m); rev != "" {
		fields = append(fields, mrkdwn("*Revision*\n"+rev))
	}
	if len(fields) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	}
	if m.Message != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(escape(clip(m.Message, 2000))), nil, nil))
	}
	if m.StatusURL != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("<"+m.StatusURL+"|fleetd status>"), nil, nil))
	}
	if m.Reason != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("*Reason*\n"+codeBlock(clip(m.Reason, 1500))), nil, nil))
	}
	if rows := driftRows(m.Drift); len(rows) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(codeBlock(strings.Join(rows, "\n"))), nil, nil))
	}
	small := []string{m.Severity.String(), string(m.Kind), m.Time.UTC().Format("2006-01-02 15:04:05 UTC")}
	small = append(small, notes(m)...)
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn(escape(strings.Join(small, " · ")))))
	return blocks
}

// revisionText is "<url|abc1234> subject — author", with the link when the
// repository's web URL is configured.
func revisionText(m Message) string {
	if m.Revision == nil || m.Revision.Commit == "" {
		return ""
	}
	hash := "`" + shortHash(m.Revision.Commit) + "`"
	if m.CommitURL != "" {
		hash = "<" + m.CommitURL + "|" + shortHash(m.Revision.Commit) + ">"
	}
	s := hash
	if m.Revision.Subject != "" {
		s += " " + escape(clip(m.Revision.Subject, 120))
	}
	if m.Revision.Author != "" {
		s += " — " + escape(m.Revision.Author)
	}
	return s
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// escape makes text safe in Slack mrkdwn (it is not a link or a mention).
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// codeBlock fences text; escaped, and without fences of its own.
func codeBlock(s string) string {
	return "```" + escape(strings.ReplaceAll(s, "```", "'''")) + "```"
}
