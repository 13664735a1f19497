/* spec_testlib.c - what check_spec.c and check_spec_optim.c share: torch's
 * defaults read from its own signatures, and spec parsing helpers. */
#include "spec_testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"

/* ---- torch's defaults: "Class.param=<json>" lines from inspect.signature ---- */

cJSON *torch_defaults; /* object "Class.param" -> value */

void load_torch_defaults(void)
{
    static const char *script =
        "import inspect, json, torch\n"
        "mods = {torch.nn: ['Linear','ReLU','GELU','Softmax','LogSoftmax','LeakyReLU','Dropout',"
        "'Flatten','MSELoss','L1Loss','CrossEntropyLoss','NLLLoss','BCELoss','BCEWithLogitsLoss',"
        "'HuberLoss','SmoothL1Loss','BatchNorm1d','BatchNorm2d','LayerNorm','GroupNorm',"
        "'Embedding','EmbeddingBag','Conv1d','Conv2d','ConvTranspose2d','MaxPool1d','MaxPool2d',"
        "'AvgPool1d','AvgPool2d','Dropout2d','KLDivLoss','ELU','Softplus','Hardtanh',"
        "'MultiheadAttention','TransformerEncoderLayer','TransformerEncoder','MarginRankingLoss',"
        "'CosineEmbeddingLoss','TripletMarginLoss'],"
        " torch.optim: ['SGD','Adagrad','RMSprop','Adam','AdamW','NAdam','RAdam','Adamax'],"
        " torch.optim.lr_scheduler: ['StepLR','MultiStepLR','ExponentialLR','CosineAnnealingLR',"
        "'LinearLR','ConstantLR','CosineAnnealingWarmRestarts','OneCycleLR',"
        "'ReduceLROnPlateau']}\n"
        "out = {}\n"
        "for m, names in mods.items():\n"
        "    for n in names:\n"
        "        for p in inspect.signature(getattr(m, n).__init__).parameters.values():\n"
        "            d = p.default\n"
        "            if isinstance(d, (bool, int, float, str, tuple)):\n"
        "                out[n + '.' + p.name] = list(d) if isinstance(d, tuple) else d\n"
        "print(json.dumps(out))\n";
    char path[] = "/tmp/check_spec_XXXXXX.py";
    int fd = mkstemps(path, 3);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return; /* tdef() then fails the test that needs a default */
    fputs(script, f);
    fclose(f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", path);
    FILE *p = popen(cmd, "r");
    static char buf[65536];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = '\0';
    int rc = p ? pclose(p) : -1;
    remove(path);
    if (rc == 0)
        torch_defaults = cJSON_Parse(buf);
}

/* torch's default for key ("Adam.eps"), which must exist. */
const cJSON *tdef(const char *key)
{
    ck_assert_msg(torch_defaults != NULL,
                  "cannot read torch's signatures (is torch importable by /usr/bin/python3?)");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(torch_defaults, key);
    ck_assert_msg(v != NULL, "torch has no default for %s", key);
    return v;
}

void eq_num(const char *key, double got)
{
    const cJSON *v = tdef(key);
    double want = cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : v->valuedouble;
    ck_assert_msg(cJSON_IsNumber(v) || cJSON_IsBool(v), "%s is not a number in torch", key);
    ck_assert_msg(got == want, "%s: default %.17g, torch's is %.17g", key, got, want);
}

void eq_str(const char *key, const char *got)
{
    const cJSON *v = tdef(key);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string in torch", key);
    ck_assert_msg(strcmp(got, v->valuestring) == 0, "%s: default %s, torch's is %s", key, got,
                  v->valuestring);
}

/* ---- helpers ---- */


bool parse_spec(const char *text, etd_spec *s, char *err, size_t cap)
{
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "test JSON does not parse: %s", text);
    memset(s, 0, sizeof *s);
    etd_err e = {0};
    bool ok = etd_spec_parse(j, 1000000, s, &e);
    ck_assert_msg(ok || e.rc == ETD_EINVAL, "%s: code %s", text, etd_rc_name(e.rc));
    snprintf(err, cap, "%s", e.msg);
    cJSON_Delete(j);
    return ok;
}

void must_parse(const char *text, etd_spec *s)
{
    char err[ETD_ERRCAP];
    ck_assert_msg(parse_spec(text, s, err, sizeof err), "%s: %s", text, err);
}

/* Refused with a message containing every string in want (NULL-terminated). */
void must_fail(const char *text, const char *want1, const char *want2)
{
    etd_spec s;
    char err[ETD_ERRCAP] = "";
    ck_assert_msg(!parse_spec(text, &s, err, sizeof err), "accepted: %s", text);
    ck_assert_msg(strstr(err, want1), "%s: \"%s\" lacks \"%s\"", text, err, want1);
    if (want2)
        ck_assert_msg(strstr(err, want2), "%s: \"%s\" lacks \"%s\"", text, err, want2);
}

void layer_spec(const char *layer_json, etd_spec *s)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},%s],"
             BASE_LOSS "," BASE_OPT "}", layer_json);
    must_parse(text, s);
    ck_assert_int_eq(s->nlayers, 2);
}

