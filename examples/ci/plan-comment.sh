#!/bin/sh
# plan-comment.sh: validate the fleet repository at the pull request's head
# and post what merging it changes on every host as a PR comment.
#
# Runs anywhere with a checkout of the pull request (full history), the
# fleetd binary, curl and jq; no Docker. Environment:
#
#   BASE_REF      branch the PR merges into (default origin/main)
#   FLEETS_PATH   fleets directory inside the repository (default .)
#   GITHUB_TOKEN, GITHUB_REPOSITORY, PR_NUMBER
#                 to post the comment on GitHub; without them the plan is
#                 only printed. Other forges: replace post_comment.
#
# Exit status: 1 when the head is invalid or the plan fails, else 0.
set -eu

BASE_REF=${BASE_REF:-origin/main}
FLEETS_PATH=${FLEETS_PATH:-.}

# Compare with the merge base, not the tip of the base branch: commits
# merged there since the branch was cut are not this PR's changes.
base=$(git merge-base "$BASE_REF" HEAD)

# 1. Validate the head for the log: every problem with file and line, each
#    marked new (this PR's) or already at the merge base. (plan below
#    checks every host of the inventory and fails on any problem.)
fleetd validate --host ci --base "$base" "$FLEETS_PATH" || true

# 2. The plan, as Markdown. Exit 0: no changes, 2: changes, 1: error or
#    invalid head (the plan is still written and posted).
status=0
fleetd plan --repo . --path "$FLEETS_PATH" --base "$base" --head HEAD \
	--format markdown >plan.md || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ] && [ ! -s plan.md ]; then
	echo "fleetd plan failed (exit $status)" >&2
	exit 1
fi
cat plan.md

post_comment() {
	# One comment per PR, updated in place: find ours by its marker.
	marker='<!-- fleetd-plan -->'
	api="https://api.github.com/repos/$GITHUB_REPOSITORY"
	body=$(printf '%s\n%s\n' "$marker" "$(cat plan.md)" | jq -Rs '{body: .}')
	id=$(curl -fsS -H "Authorization: Bearer $GITHUB_TOKEN" \
		"$api/issues/$PR_NUMBER/comments?per_page=100" |
		jq -r --arg m "$marker" '[.[] | select(.body | startswith($m))][0].id // empty')
	if [ -n "$id" ]; then
		curl -fsS -X PATCH -H "Authorization: Bearer $GITHUB_TOKEN" \
			"$api/issues/comments/$id" -d "$body" >/dev/null
	else
		curl -fsS -X POST -H "Authorization: Bearer $GITHUB_TOKEN" \
			"$api/issues/$PR_NUMBER/comments" -d "$body" >/dev/null
	fi
}

if [ -n "${GITHUB_TOKEN:-}" ] && [ -n "${PR_NUMBER:-}" ]; then
	post_comment
fi

[ "$status" -ne 1 ]
