/* Signing in to the page: the login form, the form's post that sets the token cookie, and
 * signing out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "handlers.h"
#include "hl/httpd.h"
#include "hl/util.h"
#include "page_html.h"

int aud_h_page_login(aud_req_t *r, const char *note)
{
    aud_html_t o = {hl_xmalloc(8192), 0, 8192};
    o.buf[0] = '\0';
    aud_page_head(&o, "hookline auditor: sign in");
    aud_put(&o, "<h1>hookline auditor</h1>");
    if (note) {
        aud_put(&o, "<p class=\"bad\" id=\"note\">");
        aud_esc(&o, note);
        aud_put(&o, "</p>");
    }
    /* After signing in, come back to the page that was asked for. */
    const char *qs = mg_get_request_info(r->conn)->query_string;
    aud_put(&o, "<form method=\"post\" action=\"/login\"><label>Token <input type=\"password\""
                " name=\"token\" autocomplete=\"off\"></label>");
    if (qs && strlen(qs) < 256 && strcmp(r->path, "/") == 0) {
        aud_put(&o, "<input type=\"hidden\" name=\"next\" value=\"/?");
        aud_esc(&o, qs);
        aud_put(&o, "\">");
    }
    aud_put(&o, " <button>Sign in</button></form></body></html>");
    aud_page_send(r, 401, &o, "Cache-Control: no-store\r\n");
    return 401;
}

/* Reads the form body (token=…&next=…) of at most 1 KiB. */
int aud_h_login(aud_req_t *r)
{
    char body[1025], tok[AUD_TOKEN_MAX + 2], next[300];
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    if (ri->content_length <= 0 || ri->content_length > 1024)
        return aud_h_page_login(r, "Sign-in form missing or too large.");
    size_t got = 0;
    int64_t deadline = hl_mono_us() + (int64_t)r->a->cfg->http.request_timeout_ms * 1000;
    int rc = hl_http_read_body(r->conn, body, (size_t)ri->content_length, deadline, &got);
    if (rc == HL_ETIMEDOUT)
        return aud_reply_error(r, 408, "request_timeout", "the form did not arrive in time");
    if (rc != HL_OK) return aud_h_page_login(r, "Sign-in form not received.");
    body[got] = '\0';
    int n = mg_get_var(body, got, "token", tok, sizeof tok);
    unsigned roles =
        n > 0 && n <= AUD_TOKEN_MAX ? aud_tokens_roles(&r->a->tokens, tok, (size_t)n) : 0;
    if (!(roles & (AUD_ROLE_AUDITOR | AUD_ROLE_ADMIN)))
        return aud_h_page_login(r, "That token is not valid for the page.");
    /* Only a local page path may follow the sign-in (no open redirect). */
    int nl = mg_get_var(body, got, "next", next, sizeof next);
    const char *dest = "/";
    if (nl > 1 && next[0] == '/' && next[1] == '?' && aud_id_valid(next, sizeof next - 1) &&
        !strpbrk(next, "\\ "))
        dest = next;
    /* A page that moves on by itself rather than a 303: the next request then comes from this
     * site, so the SameSite=Strict cookie goes with it even when the form was posted from
     * elsewhere. */
    char hdr[AUD_TOKEN_MAX + 256];
    snprintf(hdr, sizeof hdr,
             "Set-Cookie: hl_token=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200\r\n"
             "Cache-Control: no-store\r\n",
             tok);
    aud_html_t o = {hl_xmalloc(4096), 0, 4096};
    o.buf[0] = '\0';
    aud_put(&o, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\""
                " content=\"0;url=");
    aud_esc(&o, dest);
    aud_put(&o, "\"><title>signed in</title></head><body><a href=\"");
    aud_esc(&o, dest);
    aud_put(&o, "\">continue</a></body></html>");
    aud_page_send(r, 200, &o, hdr);
    return 200;
}

int aud_h_logout(aud_req_t *r)
{
    hl_http_send(r->conn, 303, "text/plain", r->rid,
                 "Set-Cookie: hl_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n"
                 "Location: /\r\n",
                 "signed out\n", 11);
    return 303;
}
