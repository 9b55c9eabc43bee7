"""HTTP intake for email-provider delivery webhooks: authenticate, then hand the body on."""
