/*
 * boston.c - Boston house prices regression: an MLP trained with Adam next
 * to a least-squares linear baseline (normal equations solved in double).
 *
 * usage: boston <boston_house_prices.csv> [seed]
 * The csv is scikit-learn's copy (first line a count header, second line
 * the column names, then 13 features and MEDV per row).  A deterministic
 * shuffle by seed gives an 80/20 train/test split; features (and the target,
 * for the MLP) are standardised with training statistics.  Ends with
 *     baseline_rmse=<float>
 *     mlp_rmse=<float>
 * Exit status 77 (skip) when the csv does not exist.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/easytorch.h>

#define NFEAT 13
#define MAXROWS 2048

typedef struct {
    int n;
    double x[MAXROWS][NFEAT];
    double y[MAXROWS];
} dataset;

/* Parses the csv; returns rows read or -1 (message printed). */
static int load_csv(const char *path, dataset *d)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "boston: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0;
    d->n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno <= 2) /* count header, column names */
            continue;
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        if (d->n == MAXROWS) {
            fprintf(stderr, "boston: more than %d rows\n", MAXROWS);
            break;
        }
        char *p = line;
        double vals[NFEAT + 1];
        int k = 0;
        for (; k < NFEAT + 1; k++) {
            char *end;
            vals[k] = strtod(p, &end);
            if (end == p || !isfinite(vals[k]))
                break;
            p = end;
            if (*p == ',')
                p++;
        }
        if (k != NFEAT + 1) {
            fprintf(stderr, "boston: %s:%d: expected %d numbers\n", path, lineno, NFEAT + 1);
            fclose(f);
            return -1;
        }
        memcpy(d->x[d->n], vals, sizeof(double) * NFEAT);
        d->y[d->n] = vals[NFEAT];
        d->n++;
    }
    fclose(f);
    return d->n;
}

/* Least squares with intercept: solve (A^T A) w = A^T y by Gaussian
 * elimination with partial pivoting, A = [1, x].  Returns 0 on success. */
static int fit_linear(const dataset *d, const int *idx, int n, const double *mu,
                      const double *sd, double w[NFEAT + 1])
{
    enum { P = NFEAT + 1 };
    double m[P][P + 1];
    memset(m, 0, sizeof m);
    for (int r = 0; r < n; r++) {
        double a[P];
        a[0] = 1;
        for (int j = 0; j < NFEAT; j++)
            a[j + 1] = (d->x[idx[r]][j] - mu[j]) / sd[j];
        for (int i = 0; i < P; i++) {
            for (int j = 0; j < P; j++)
                m[i][j] += a[i] * a[j];
            m[i][P] += a[i] * d->y[idx[r]];
        }
    }
    for (int c = 0; c < P; c++) {
        int piv = c;
        for (int r = c + 1; r < P; r++)
            if (fabs(m[r][c]) > fabs(m[piv][c]))
                piv = r;
        if (fabs(m[piv][c]) < 1e-12)
            return -1;
        for (int j = 0; j <= P; j++) {
            double t = m[c][j];
            m[c][j] = m[piv][j];
            m[piv][j] = t;
        }
        for (int r = 0; r < P; r++) {
            if (r == c)
                continue;
            double f = m[r][c] / m[c][c];
            for (int j = c; j <= P; j++)
                m[r][j] -= f * m[c][j];
        }
    }
    for (int i = 0; i < P; i++)
        w[i] = m[i][P] / m[i][i];
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: boston <boston_house_prices.csv> [seed]\n");
        return 2;
    }
    static dataset d;
    FILE *probe = fopen(argv[1], "r");
    if (!probe) {
        fprintf(stderr, "boston: %s not found, skipping\n", argv[1]);
        return 77;
    }
    fclose(probe);
    if (load_csv(argv[1], &d) < 10)
        return 1;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    et_generator *g = et_generator_new(seed);

    /* deterministic Fisher-Yates shuffle, 80/20 split */
    int idx[MAXROWS];
    for (int i = 0; i < d.n; i++)
        idx[i] = i;
    for (int i = d.n - 1; i > 0; i--) {
        int j = (int)(et_generator_next(g) % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    int ntrain = d.n * 8 / 10, ntest = d.n - ntrain;
    const int *tr = idx, *te = idx + ntrain;

    double mu[NFEAT] = {0}, sd[NFEAT] = {0}, ymu = 0, ysd = 0;
    for (int r = 0; r < ntrain; r++) {
        for (int j = 0; j < NFEAT; j++)
            mu[j] += d.x[tr[r]][j] / ntrain;
        ymu += d.y[tr[r]] / ntrain;
    }
    for (int r = 0; r < ntrain; r++) {
        for (int j = 0; j < NFEAT; j++)
            sd[j] += pow(d.x[tr[r]][j] - mu[j], 2) / ntrain;
        ysd += pow(d.y[tr[r]] - ymu, 2) / ntrain;
    }
    for (int j = 0; j < NFEAT; j++)
        sd[j] = sd[j] > 0 ? sqrt(sd[j]) : 1;
    ysd = sqrt(ysd);

    /* linear baseline */
    double w[NFEAT + 1], se = 0;
    if (fit_linear(&d, tr, ntrain, mu, sd, w) != 0) {
        fprintf(stderr, "boston: singular normal equations\n");
        return 1;
    }
    for (int r = 0; r < ntest; r++) {
        double p = w[0];
        for (int j = 0; j < NFEAT; j++)
            p += w[j + 1] * (d.x[te[r]][j] - mu[j]) / sd[j];
        se += pow(p - d.y[te[r]], 2);
    }
    double baseline = sqrt(se / ntest);

    /* tensors: standardised features and target */
    float *xtr = malloc(sizeof(float) * (size_t)ntrain * NFEAT);
    float *ytr = malloc(sizeof(float) * (size_t)ntrain);
    float *xte = malloc(sizeof(float) * (size_t)ntest * NFEAT);
    for (int r = 0; r < ntrain; r++) {
        for (int j = 0; j < NFEAT; j++)
            xtr[r * NFEAT + j] = (float)((d.x[tr[r]][j] - mu[j]) / sd[j]);
        ytr[r] = (float)((d.y[tr[r]] - ymu) / ysd);
    }
    for (int r = 0; r < ntest; r++)
        for (int j = 0; j < NFEAT; j++)
            xte[r * NFEAT + j] = (float)((d.x[te[r]][j] - mu[j]) / sd[j]);
    et_tensor *Xtr = et_tensor_new(xtr, ET_SHAPE(ntrain, NFEAT));
    et_tensor *Ytr = et_tensor_new(ytr, ET_SHAPE(ntrain, 1));
    et_tensor *Xte = et_tensor_new(xte, ET_SHAPE(ntest, NFEAT));
    free(xtr);
    free(ytr);
    free(xte);

    et_module *net = et_sequential_new();
    et_sequential_append(net, et_linear_new(NFEAT, 64, true, g));
    et_sequential_append(net, et_relu_new());
    et_sequential_append(net, et_dropout_new(0.1f, g));
    et_sequential_append(net, et_linear_new(64, 32, true, g));
    et_sequential_append(net, et_relu_new());
    et_sequential_append(net, et_linear_new(32, 1, true, g));
    et_tensor *params[8];
    int np = et_module_num_params(net);
    for (int i = 0; i < np; i++)
        params[i] = et_module_param(net, i);
    et_adam_opts ao = ET_ADAM_DEFAULTS;
    ao.lr = 1e-3;
    ao.weight_decay = 1e-4;
    et_optim *opt = et_adam_new(params, np, ao);
    if (!opt) {
        fprintf(stderr, "boston: %s\n", et_errmsg());
        return 1;
    }
    /* mini-batches of 32 rows in a per-epoch shuffled order */
    const int epochs = 200, bs = 32;
    int *order = malloc(sizeof(int) * (size_t)ntrain);
    for (int i = 0; i < ntrain; i++)
        order[i] = i;
    float *bx = malloc(sizeof(float) * bs * NFEAT), *by = malloc(sizeof(float) * bs);
    const float *xd = et_data(Xtr), *yd = et_data(Ytr);
    int rc = 0;
    for (int epoch = 1; epoch <= epochs && rc == 0; epoch++) {
        for (int i = ntrain - 1; i > 0; i--) {
            int j = (int)(et_generator_next(g) % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double tot = 0;
        for (int b0 = 0; b0 < ntrain; b0 += bs) {
            int nb = ntrain - b0 < bs ? ntrain - b0 : bs;
            for (int r = 0; r < nb; r++) {
                memcpy(bx + r * NFEAT, xd + order[b0 + r] * NFEAT, sizeof(float) * NFEAT);
                by[r] = yd[order[b0 + r]];
            }
            et_pool_begin();
            et_tensor *x = et_tensor_new(bx, ET_SHAPE(nb, NFEAT));
            et_tensor *y = et_tensor_new(by, ET_SHAPE(nb, 1));
            et_optim_zero_grad(opt);
            et_tensor *loss = et_mse_loss(et_module_forward(net, x), y, ET_REDUCTION_MEAN);
            if (!loss || et_backward(loss, NULL) != ET_OK || et_optim_step(opt) != ET_OK) {
                fprintf(stderr, "boston: %s\n", et_errmsg());
                rc = 1;
            } else {
                tot += et_item(loss) * nb;
            }
            et_pool_end();
        }
        if (epoch % 50 == 0)
            printf("epoch %3d  train mse (standardised) %.4f\n", epoch, tot / ntrain);
    }
    free(order);
    free(bx);
    free(by);

    double mlp = NAN;
    et_module_train(net, false);
    ET_NO_GRAD
    {
        et_pool_begin();
        et_tensor *pred = et_module_forward(net, Xte);
        if (pred) {
            se = 0;
            for (int r = 0; r < ntest; r++)
                se += pow(et_data(pred)[r] * ysd + ymu - d.y[te[r]], 2);
            mlp = sqrt(se / ntest);
        }
        et_pool_end();
    }
    printf("rows=%d train=%d test=%d\n", d.n, ntrain, ntest);
    printf("baseline_rmse=%.4f\n", baseline);
    printf("mlp_rmse=%.4f\n", mlp);

    et_optim_free(opt);
    et_module_free(net);
    et_tensor_free(Xtr);
    et_tensor_free(Ytr);
    et_tensor_free(Xte);
    et_generator_free(g);
    return rc != 0 || isnan(mlp) ? 1 : 0;
}
