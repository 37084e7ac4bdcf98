"""Headers every HTML page of the gallery carries.

The pages load only their own stylesheet, script, images and videos, so the policy allows nothing
else: no inline scripts, no foreign origins, no framing. Inline `style` attributes stay allowed
(`style-src-attr`) because the progress bars are drawn with them; `<style>` elements are not.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
