/* The evidence folder: the files a replay leaves behind for an auditor, sealed by a
 * SHA256SUMS manifest that `hookline evidence verify` checks (changed, missing, extra files). */
#ifndef CLI_EVIDENCE_H
#define CLI_EVIDENCE_H

#include <stddef.h>
#include <stdio.h>

#include "hl/error.h"

#define CLI_EVIDENCE_MANIFEST "SHA256SUMS"
#define CLI_EVIDENCE_SIGNATURE "SHA256SUMS.sig" /* the auditor's signature of the manifest */
#define CLI_EVIDENCE_MAX_FILES 1024
#define CLI_EVIDENCE_MAX_MANIFEST (1u << 20)

/* Creates dir and its missing parents (mode 0755). Returns 0 or HL_EIO. */
int cli_evidence_mkdir(const char *dir) HL_MUST_CHECK;

/* Writes len bytes to dir/name (a plain file name, no '/'), replacing it. Returns 0, HL_EINVAL
 * or HL_EIO. */
int cli_evidence_write(const char *dir, const char *name, const char *data,
                       size_t len) HL_MUST_CHECK;

/* Opens dir/name for writing (caller fcloses); NULL on error. */
FILE *cli_evidence_open(const char *dir, const char *name);

/* SHA-256 of a file as 64 hex characters + NUL. Returns 0 or HL_EIO. */
int cli_sha256_file(const char *path, char hex[65]) HL_MUST_CHECK;

/* Writes SHA256SUMS ("<hex>  <name>" lines, sorted by name) over every regular file in dir
 * except the manifest itself. Refuses subfolders and more than CLI_EVIDENCE_MAX_FILES files.
 * Returns 0, HL_EIO or HL_ETOOBIG. */
int cli_evidence_seal(const char *dir) HL_MUST_CHECK;

/* Checks dir against its manifest. Every problem is one line on `out` ("modified: name",
 * "missing: name", "unlisted: name", "malformed manifest line N"). Returns the number of
 * problems (0 = intact), or HL_EIO when the manifest cannot be read at all. */
int cli_evidence_verify(const char *dir, FILE *out);
/* The same, with a progress line ("checking file i of n") on progress while hashing; NULL for
 * none. */
int cli_evidence_verify_progress(const char *dir, FILE *out, FILE *progress);

/* Asks the auditor at host:port (bearer token) to sign dir's manifest with its checkpoint key,
 * together with the newest checkpoint of every chain (POST /v1/evidence), and writes the
 * answer to dir/SHA256SUMS.sig. Returns 0, or HL_EIO with errbuf filled. */
int cli_evidence_sign(const char *dir, const char *host, int port, const char *token, char *errbuf,
                      size_t errcap) HL_MUST_CHECK;

/* Checks dir/SHA256SUMS.sig: made for this manifest, its signature valid for the public key
 * it names (and that key equal to pin, 64 hex, when pin is not NULL), each checkpoint in it
 * signed by a key of its ring. One line per problem on `report` (or one "signed:" line when
 * none). Returns the number of problems; a missing signature is one only with a pin. */
int cli_evidence_check_signature(const char *dir, const char *pin, FILE *report);

#endif
