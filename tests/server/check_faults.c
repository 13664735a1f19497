/* check_faults.c - the save path under file-system faults.  write, fsync
 * and rename of the daemon's code are wrapped at link time
 * (-Wl,--wrap=..., tests/server/meson.build) so a test can make the next
 * ones fail with ENOSPC or EIO, cut a write short, fail the fsync of the
 * file or of the directory, or the rename.  Requests go through the whole
 * daemon (etd_dispatch, --sync always).  For every fault:
 *   - the request that hits it gets 507 (full disk) or 500 with a message
 *     naming the model, the file and the system's reason;
 *   - the model file on disk is the one of the last acknowledged change,
 *     byte for byte, and loads in a fresh registry;
 *   - the daemon keeps serving: the model answers as before the request
 *     (nothing changed) and the next request, with the fault gone, works;
 *   - no temp file is left behind. */
#include "check_server.h"
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "server/config.h"

/* ---- the fault switch ---- */

typedef enum { F_NONE, F_WRITE, F_WRITE_SHORT, F_FSYNC_FILE, F_FSYNC_DIR, F_RENAME } fault_kind;

static fault_kind fault;
static int fault_errno;
static int hits; /* faults injected */

ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_fsync(int fd);
int __real_rename(const char *from, const char *to);

ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    static bool cut; /* F_WRITE_SHORT: half of the first write goes through */
    if (fault == F_WRITE_SHORT && !cut && n > 1) {
        cut = true;
        return __real_write(fd, buf, n / 2);
    }
    if (fault == F_WRITE || fault == F_WRITE_SHORT) {
        cut = false;
        hits++;
        errno = fault_errno;
        return -1;
    }
    return __real_write(fd, buf, n);
}

int __wrap_fsync(int fd);
int __wrap_fsync(int fd)
{
    struct stat st;
    bool is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    if ((fault == F_FSYNC_FILE && !is_dir) || (fault == F_FSYNC_DIR && is_dir)) {
        hits++;
        errno = fault_errno;
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to)
{
    if (fault == F_RENAME) {
        hits++;
        errno = fault_errno;
        return -1;
    }
    return __real_rename(from, to);
}

static void set_fault(fault_kind k, int err)
{
    fault = k;
    fault_errno = err;
    hits = 0;
}

/* ---- a daemon without sockets ---- */

static char dir[256];
static etd_config cfg;
static etd_registry *reg;
static etd_app app;
static etd_server *srv;

static void start(bool sync_always)
{
    cfg = (etd_config){
        .http = {.max_body = 1 << 20, .quiet = true},
        .json = {.max_depth = 32, .max_values = 100000, .max_elems = 100000},
        .models = {.data_dir = dir, .sync_always = sync_always, .save_interval = 3600,
                   .max_models = 8, .max_params = 100000, .max_steps = 1000, .max_history = 1000},
    };
    etd_err e;
    reg = etd_registry_new(&cfg.models, &e);
    ck_assert_msg(reg != NULL, "%s", e.msg);
    etd_registry_load_all(reg);
    app = (etd_app){.reg = reg, .json = cfg.json};
    srv = etd_server_new_detached(&cfg.http, etd_routes, etd_nroutes, &app);
    ck_assert_ptr_nonnull(srv);
}

static void stop(void)
{
    etd_server_shutdown(srv);
    etd_registry_free(reg);
}

static void setup(void)
{
    set_fault(F_NONE, 0);
    snprintf(dir, sizeof dir, "/tmp/check_faults_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    start(true);
}

static void teardown(void)
{
    set_fault(F_NONE, 0);
    stop();
    remove_scratch_dir(dir);
}

typedef struct reply {
    int status;
    char *body;
} reply;

/* One request; the body's Content-Length is set.  Caller frees r.body. */
static reply req(const char *method, const char *url, const char *body)
{
    const char *names[1] = {"Content-Length"}, *values[1];
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", body ? strlen(body) : 0);
    values[0] = cl;
    reply r = {0};
    size_t len;
    const char *type;
    r.status = etd_dispatch(srv, method, url, names, values, NULL, body ? 1 : 0, body,
                            body ? strlen(body) : 0, &r.body, &len, &type);
    ck_assert_ptr_nonnull(r.body);
    return r;
}

static void expect(const char *method, const char *url, const char *body, int status,
                   const char *want)
{
    reply r = req(method, url, body);
    ck_assert_msg(r.status == status, "%s %s: status %d, want %d: %s", method, url, r.status,
                  status, r.body);
    if (want)
        ck_assert_msg(strstr(r.body, want), "%s %s: \"%s\" lacks \"%s\"", method, url, r.body, want);
    free(r.body);
}

/* The body of a successful GET. */
static char *get(const char *url)
{
    reply r = req("GET", url, NULL);
    ck_assert_msg(r.status == 200, "GET %s: %d %s", url, r.status, r.body);
    return r.body;
}

static uint8_t *slurp(const char *file, size_t *len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int count_files(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
             strcmp(de->d_name, ".easytorchd.lock") != 0;
    closedir(d);
    return n;
}

#define SPEC "{\"name\":\"m\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,\"out_features\":3}," \
             "{\"type\":\"ReLU\"},{\"type\":\"Linear\",\"in_features\":3,\"out_features\":1}]," \
             "\"loss\":\"MSELoss\",\"optimizer\":{\"type\":\"Adam\",\"lr\":0.1},\"seed\":1}"
#define BATCH "{\"inputs\":[[1,2],[3,-1]],\"targets\":[[0.5],[-1]]}"
#define TRAIN "{\"inputs\":[[1,2],[3,-1]],\"targets\":[[0.5],[-1]],\"epochs\":3}"
#define PARAMS "{\"0.weight\":[[1,0],[0,1],[1,1]],\"0.bias\":[0,0,0],\"2.weight\":[[1,1,1]]," \
               "\"2.bias\":[0]}"

/* The faults, what they answer and what the message says. */
static const struct {
    fault_kind kind;
    int err, status;
    const char *says;
} faults[] = {
    {F_WRITE, ENOSPC, 507, "writing m.etm: No space left on device"},
    {F_WRITE, EDQUOT, 507, "writing m.etm: Disk quota exceeded"},
    {F_WRITE, EIO, 500, "writing m.etm: Input/output error"},
    {F_WRITE_SHORT, ENOSPC, 507, "writing m.etm: No space left on device"},
    {F_FSYNC_FILE, EIO, 500, "fsync of m.etm: Input/output error"},
    {F_RENAME, EIO, 500, "renaming the temp file to m.etm: Input/output error"},
    {F_FSYNC_DIR, EIO, 500, "fsync of the data directory after writing m.etm: Input/output error"},
};
#define NFAULTS ((int)(sizeof faults / sizeof faults[0]))

/* One change under one fault: refused with the fault's status and message,
 * nothing changed in memory or on disk, the daemon serving, the file
 * loadable, the same change working once the fault is gone. */
static void change_under_fault(int k, const char *method, const char *url, const char *body)
{
    size_t len0, len1;
    uint8_t *file0 = slurp("m.etm", &len0);
    ck_assert_ptr_nonnull(file0);
    char *model0 = get("/v1/models/m"), *grads0 = get("/v1/models/m/gradients");
    char *params0 = get("/v1/models/m/parameters");

    set_fault(faults[k].kind, faults[k].err);
    reply r = req(method, url, body);
    set_fault(F_NONE, 0);
    ck_assert_msg(r.status == faults[k].status, "fault %d, %s %s: %d %s", k, method, url, r.status,
                  r.body);
    ck_assert_msg(strstr(r.body, "saving model \\\"m\\\" failed: ") && strstr(r.body, faults[k].says)
                  && strstr(r.body, "the request changed nothing"), "fault %d: %s", k, r.body);
    free(r.body);

    /* in memory: as before the request */
    char *model1 = get("/v1/models/m"), *grads1 = get("/v1/models/m/gradients");
    char *params1 = get("/v1/models/m/parameters");
    ck_assert_msg(strcmp(model0, model1) == 0, "fault %d: %s\nthen %s", k, model0, model1);
    ck_assert_str_eq(grads0, grads1);
    ck_assert_str_eq(params0, params1);
    /* on disk: the file of the last acknowledged change, no temp file */
    uint8_t *file1 = slurp("m.etm", &len1);
    ck_assert_msg(file1 && len1 == len0 && memcmp(file0, file1, len0) == 0,
                  "fault %d: the model file changed", k);
    ck_assert_int_eq(count_files(), 1);
    /* it loads, as that state */
    etd_err e;
    etd_registry_opts o2 = cfg.models;
    char dir2[300];
    o2.data_dir = copy_scratch_dir(dir, dir2, sizeof dir2);
    etd_registry *r2 = etd_registry_new(&o2, &e); /* a data dir has one owner at a time */
    ck_assert_msg(r2 != NULL, "%s", e.msg);
    etd_registry_load_all(r2);
    etd_model *m;
    ck_assert_msg(etd_registry_get(r2, "m", &m, &e) == ETD_OK, "fault %d: %s", k, e.msg);
    etd_model_info in;
    etd_model_info_get(m, &in);
    const cJSON *j = cJSON_Parse(model0);
    ck_assert_int_eq(in.sum.step, cJSON_GetObjectItem(j, "step")->valueint);
    ck_assert_int_eq(in.sum.pending, cJSON_GetObjectItem(j, "pending_batches")->valueint);
    cJSON_Delete((cJSON *)j);
    etd_model_unref(m);
    etd_registry_free(r2);
    remove_scratch_dir(dir2);
    /* and the daemon goes on: the same change now works */
    expect(method, url, body, 200, NULL);
    free(file0);
    free(file1);
    free(model0);
    free(model1);
    free(grads0);
    free(grads1);
    free(params0);
    free(params1);
}

START_TEST(test_every_change_under_every_fault_changes_nothing)
{
    expect("POST", "/v1/models", SPEC, 201, NULL);
    expect("POST", "/v1/models/m/batches", BATCH, 200, "\"pending_batches\":1");
    for (int k = 0; k < NFAULTS; k++) {
        change_under_fault(k, "POST", "/v1/models/m/batches", BATCH);
        change_under_fault(k, "POST", "/v1/models/m/step", NULL);
        change_under_fault(k, "POST", "/v1/models/m/train", TRAIN);
        change_under_fault(k, "PUT", "/v1/models/m/parameters", PARAMS);
        /* something pending for the next round's step */
        expect("POST", "/v1/models/m/batches", BATCH, 200, NULL);
    }
    /* what the model went through: 2 batches + per fault (batch, step, train
     * 3 steps, put, batch) -- the refused requests left no trace */
    char *m = get("/v1/models/m");
    char want[64];
    snprintf(want, sizeof want, "\"step\":%d,\"pending_batches\":1", NFAULTS * 4);
    ck_assert_msg(strstr(m, want), "%s lacks %s", m, want);
    free(m);
}
END_TEST

START_TEST(test_define_under_a_fault_creates_nothing)
{
    for (int k = 0; k < NFAULTS; k++) {
        set_fault(faults[k].kind, faults[k].err);
        reply r = req("POST", "/v1/models", SPEC);
        set_fault(F_NONE, 0);
        ck_assert_msg(r.status == faults[k].status, "fault %d: %d %s", k, r.status, r.body);
        ck_assert_msg(strstr(r.body, faults[k].says) && strstr(r.body, "the model was not created"),
                      "fault %d: %s", k, r.body);
        free(r.body);
        expect("GET", "/v1/models/m", NULL, 404, "no model named");
        expect("GET", "/v1/models", NULL, 200, "{\"models\":[]}");
        ck_assert_int_eq(count_files(), 0);
    }
    expect("POST", "/v1/models", SPEC, 201, NULL);
    ck_assert_int_eq(count_files(), 1);
}
END_TEST

START_TEST(test_checkpoint_under_a_fault_keeps_the_last_file)
{
    stop(); /* --sync interval: changes wait for the saver or a checkpoint */
    start(false);
    expect("POST", "/v1/models", SPEC, 201, NULL);
    size_t len0, len1;
    uint8_t *file0 = slurp("m.etm", &len0);
    expect("POST", "/v1/models/m/batches", BATCH, 200, NULL);
    for (int k = 0; k < NFAULTS; k++) {
        set_fault(faults[k].kind, faults[k].err);
        reply r = req("POST", "/v1/models/m/checkpoint", NULL);
        set_fault(F_NONE, 0);
        ck_assert_msg(r.status == faults[k].status && strstr(r.body, faults[k].says),
                      "fault %d: %d %s", k, r.status, r.body);
        free(r.body);
        uint8_t *f = slurp("m.etm", &len1);
        if (faults[k].kind != F_FSYNC_DIR) /* else the new file is in place, not yet durable */
            ck_assert_msg(len1 == len0 && memcmp(f, file0, len0) == 0, "fault %d", k);
        free(f);
        ck_assert_int_eq(count_files(), 1);
        expect("POST", "/v1/models/m/predict", "{\"inputs\":[[1,2]]}", 200, "outputs");
    }
    /* the change is still there, unsaved: the saver and a checkpoint write it */
    ck_assert_int_eq(etd_registry_save_all(reg), 0);
    expect("POST", "/v1/models/m/checkpoint", NULL, 200, "\"saved\":true");
    free(file0);
    stop();
    start(false);
    expect("GET", "/v1/models/m", NULL, 200, "\"pending_batches\":1");
}
END_TEST

START_TEST(test_the_switch_injects_faults)
{
    /* the wraps are in place: a test that cannot fail is a defect */
    expect("POST", "/v1/models", SPEC, 201, NULL);
    for (int k = 0; k < NFAULTS; k++) {
        set_fault(faults[k].kind, faults[k].err);
        reply r = req("POST", "/v1/models/m/batches", BATCH);
        ck_assert_msg(hits >= 1, "fault %d never hit", k);
        set_fault(F_NONE, 0);
        free(r.body);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("save_path");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_the_switch_injects_faults);
    tcase_add_test(tc, test_every_change_under_every_fault_changes_nothing);
    tcase_add_test(tc, test_define_under_a_fault_creates_nothing);
    tcase_add_test(tc, test_checkpoint_under_a_fault_keeps_the_last_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
