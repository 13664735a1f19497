/* guard.c - the divergence guard (models.h): finiteness checks of the loss,
 * the gradients and the parameters, the count and last event, and the
 * rollback policy's image of the last finite state.
 *
 * The checks read every gradient (before a step) and every parameter
 * (after one) once: O(parameters), small next to the forward and backward
 * of a batch.  They test the float's exponent bits rather than calling
 * isfinite(), so the loop vectorises without -ffast-math.
 *
 * The image (rollback only) is a train_state snapshot of everything but
 * the guard's own fields; refreshing it copies the tensors into the
 * image's own in place when the set of tensors is unchanged, so keeping it
 * current costs a copy of the parameters and optimizer state per step and
 * no allocation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/formats/json_out.h"
#include "server/models/model_internal.h"

const char *const etd_nf_policy_names[] = {"skip", "rollback", "allow", NULL};
const char *const etd_nf_action_names[] = {"skipped", "rolled_back", "applied", NULL};

/* ---------------------------------------------------------------- checks */

/* Index of the first non-finite float of v[0..n), or -1. */
static int64_t first_nonfinite(const float *v, int64_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)v;
    const int64_t block = 1024;
    for (int64_t b = 0; b < n; b += block) {
        int64_t e = b + block < n ? b + block : n;
        uint32_t bad = 0;
        for (int64_t i = b; i < e; i++)
            bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
        if (bad)
            for (int64_t i = b; i < e; i++)
                if ((u[i] & 0x7f800000u) == 0x7f800000u)
                    return i;
    }
    return -1;
}

static const char *kind(float v)
{
    return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf";
}

/* A tensor's first non-finite element, or -1 (*val: that element).  Makes
 * no tensor, so it may run inside or outside a tensor pool. */
static int64_t tensor_nonfinite(const et_tensor *t, float *val)
{
    if (et_tensor_dtype(t) != ET_FLOAT32)
        return -1;
    float *buf = NULL;
    const float *v = et_is_contiguous(t) ? et_data_const(t) : NULL;
    if (!v && (buf = malloc((size_t)(et_numel(t) ? et_numel(t) : 1) * sizeof(float)))) {
        et_copy_to(t, buf); /* a strided view: its elements in order */
        v = buf;
    }
    int64_t i = v ? first_nonfinite(v, et_numel(t)) : -1;
    if (i >= 0)
        *val = v[i];
    free(buf);
    return i;
}

bool etd_guard_loss_bad(float loss, char *why, size_t cap)
{
    if (isfinite(loss))
        return false;
    snprintf(why, cap, "loss is %s", kind(loss));
    return true;
}

static bool tensors_ok(const etd_model *m, bool grads, char *why, size_t cap)
{
    for (int i = 0; i < m->nparams; i++) {
        const et_tensor *t = grads ? et_grad(m->params[i]) : m->params[i];
        float v = 0;
        int64_t at = t ? tensor_nonfinite(t, &v) : -1;
        if (at >= 0) {
            snprintf(why, cap, "%s %s is not finite (%s at element %lld)",
                     grads ? "gradient of" : "parameter", et_module_param_name(m->net, i),
                     kind(v), (long long)at);
            return false;
        }
    }
    return true;
}

bool etd_guard_grads_ok(const etd_model *m, char *why, size_t cap)
{
    return tensors_ok(m, true, why, cap);
}

bool etd_guard_params_ok(const etd_model *m, char *why, size_t cap)
{
    return tensors_ok(m, false, why, cap);
}

bool etd_guard_buffers_ok(const etd_model *m, char *why, size_t cap)
{
    int nb = et_module_num_buffers(m->net);
    for (int i = 0; i < nb; i++) {
        float v = 0;
        int64_t at = tensor_nonfinite(et_module_buffer(m->net, i), &v);
        if (at >= 0) {
            snprintf(why, cap, "buffer %s is not finite (%s at element %lld)",
                     et_module_buffer_name(m->net, i), kind(v), (long long)at);
            return false;
        }
    }
    return true;
}

void etd_guard_recheck(etd_model *m)
{
    char why[ETD_NF_REASON];
    m->ts.diverged = !etd_guard_params_ok(m, why, sizeof why);
}

/* ---------------------------------------------------------------- events */

void etd_guard_note(etd_model *m, const char *source, const char *why, etd_nf_action a)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->ts.nf_count++;
    m->ts.nf_step = m->ts.step;
    m->ts.nf_time = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    m->ts.nf_action = (int)a;
    snprintf(m->ts.nf_source, sizeof m->ts.nf_source, "%s", source);
    snprintf(m->ts.nf_reason, sizeof m->ts.nf_reason, "%s", why);
    etd_model_publish(m);
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_puts(&b, "\"step\":");
    etd_json_i64(&b, m->ts.step);
    etd_buf_puts(&b, ",\"source\":");
    etd_json_str(&b, source);
    etd_buf_puts(&b, ",\"reason\":");
    etd_json_str(&b, why);
    etd_buf_printf(&b, ",\"action\":\"%s\",\"count\":%lld,\"policy\":\"%s\",\"status\":\"%s\"",
                   etd_nf_action_names[a], (long long)m->ts.nf_count,
                   etd_nf_policy_names[m->ts.nonfinite], m->ts.diverged ? "diverged" : "ok");
    /* the marker on the loss chart: where, what, and what was done */
    etd_buf mk;
    etd_buf_init(&mk);
    etd_buf_puts(&mk, "\"source\":");
    etd_json_str(&mk, source);
    etd_buf_puts(&mk, ",\"reason\":");
    etd_json_str(&mk, why);
    etd_buf_printf(&mk, ",\"action\":\"%s\"", etd_nf_action_names[a]);
    if (!mk.oom)
        etd_model_marker_add(m, m->ts.step, ETD_MK_NONFINITE, mk.data);
    etd_buf_free(&mk);
    etd_events_flush(m); /* after the steps before it */
    if (!b.oom)
        etd_events_publish(m, ETD_EV_NONFINITE, b.data);
    etd_buf_free(&b);
}

/* ---------------------------------------------------------------- the image */

#define IMAGE_PARTS \
    (ETD_TS_PARAMS | ETD_TS_GRADS | ETD_TS_OPTIM | ETD_TS_SCALARS | ETD_TS_HISTORY | ETD_TS_BUFFERS)

void etd_guard_drop(etd_model *m)
{
    if (m->guard_img) {
        etd_ts_free(m->guard_img);
        free(m->guard_img);
        m->guard_img = NULL;
    }
}

etd_rc etd_guard_keep(etd_model *m, etd_err *e)
{
    if (m->ts.nonfinite != ETD_NF_ROLLBACK) {
        etd_guard_drop(m);
        return ETD_OK;
    }
    if (m->guard_img && etd_ts_refresh(m, m->guard_img))
        return ETD_OK;
    etd_guard_drop(m);
    etd_train_state *st = calloc(1, sizeof *st);
    if (!st)
        return etd_fail(e, ETD_ENOMEM, "out of memory keeping the rollback image");
    if (etd_ts_capture(m, IMAGE_PARTS, true, st, e) != ETD_OK) {
        free(st);
        return e->rc;
    }
    m->guard_img = st;
    return ETD_OK;
}

etd_rc etd_guard_restore(etd_model *m, etd_err *e)
{
    if (!m->guard_img)
        return etd_fail(e, ETD_ESTATE, "no rollback image");
    /* the guard's own fields describe what happened: they stay; so do the
     * validation entries (measurements of states the model did have) */
    etd_ts_scalars keep = m->ts;
    pthread_mutex_lock(&m->pub_mu);
    m->guard_img->vlen = m->v_len;
    pthread_mutex_unlock(&m->pub_mu);
    if (etd_ts_apply(m, m->guard_img, e) != ETD_OK)
        return e->rc;
    m->ts.nonfinite = keep.nonfinite;
    m->ts.nf_count = keep.nf_count;
    m->ts.nf_step = keep.nf_step;
    m->ts.nf_time = keep.nf_time;
    m->ts.nf_action = keep.nf_action;
    memcpy(m->ts.nf_source, keep.nf_source, sizeof keep.nf_source);
    memcpy(m->ts.nf_reason, keep.nf_reason, sizeof keep.nf_reason);
    etd_guard_recheck(m);
    etd_model_publish(m);
    return ETD_OK;
}
