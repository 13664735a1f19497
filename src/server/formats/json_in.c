/* json_in.c - strict JSON input for easytorchd (see json_in.h). */
#include "server/formats/json_in.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- key checks */

const cJSON *etd_bad_key(const cJSON *obj, const char *const *allowed, const char *also,
                         bool *repeated)
{
    for (const cJSON *e = obj->child; e; e = e->next) {
        for (const cJSON *p = obj->child; p != e; p = p->next)
            if (strcmp(p->string, e->string) == 0) {
                *repeated = true;
                return e;
            }
        bool ok = also && strcmp(e->string, also) == 0;
        for (int i = 0; !ok && allowed[i]; i++)
            ok = strcmp(allowed[i], e->string) == 0;
        if (!ok) {
            *repeated = false;
            return e;
        }
    }
    return NULL;
}

void etd_join_names(const char *const *names, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && n < cap; i++) /* snprintf truncates; n may pass cap */
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", names[i]);
}

/* Optimal-string-alignment distance (edits: insert, delete, substitute,
 * swap two neighbours), case-insensitive, capped: anything above `cap` is
 * cap + 1.  Names are short (type and field names). */
static int edit_distance(const char *a, const char *b, int cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > (size_t)cap)
        return cap + 1;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb] > cap ? cap + 1 : d[la][lb];
}

const char *etd_suggest(const char *got, const char *const *names)
{
    if (!got || !got[0])
        return NULL;
    for (int i = 0; names[i]; i++)
        if (strcasecmp(got, names[i]) == 0)
            return names[i];
    /* two edits for names of 5+ letters, one below that: "lr" must not
     * suggest "eps" */
    int cap = strlen(got) >= 5 ? 2 : 1, best = cap + 1, nbest = 0;
    const char *pick = NULL;
    for (int i = 0; names[i]; i++) {
        int d = edit_distance(got, names[i], cap);
        if (d < best) {
            best = d;
            pick = names[i];
            nbest = 1;
        } else if (d == best) {
            nbest++;
        }
    }
    return best <= cap && nbest == 1 ? pick : NULL;
}

void etd_err_suggest(etd_err *e, const char *got, const char *const *names)
{
    const char *s = etd_suggest(got, names);
    if (s)
        etd_err_append(e, "; did you mean \"%s\"?", s);
}

bool etd_check_keys(const cJSON *obj, const char *path, const char *for_what,
                    const char *const *allowed, const char *also, etd_err *e)
{
    bool repeated;
    const cJSON *bad = etd_bad_key(obj, allowed, also, &repeated);
    if (!bad)
        return true;
    const char *dot = path && path[0] ? "." : "";
    if (!path)
        path = "";
    if (repeated) {
        etd_fail(e, ETD_EINVAL, "%s%s%s: repeated field", path, dot, bad->string);
        return false;
    }
    char list[512];
    etd_join_names(allowed, list, sizeof list);
    etd_fail(e, ETD_EINVAL, "%s%s%s: unknown field%s (%s%s)", path, dot, bad->string,
             for_what ? for_what : "", allowed[0] ? "accepted: " : "it takes no fields", list);
    etd_err_suggest(e, bad->string, allowed);
    return false;
}
