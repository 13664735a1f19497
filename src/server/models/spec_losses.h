/*
 * spec_losses.h - the loss types of several model outputs, defined in
 * spec_losses.c for spec_train.c's table (internal to the models layer).
 */
#ifndef EASYTORCHD_SPEC_LOSSES_H
#define EASYTORCHD_SPEC_LOSSES_H

#include "server/models/spec.h"

extern const char *const etd_margin_fields[];     /* margin, reduction */
extern const char *const etd_triplet_fields[];    /* margin, p, eps, swap, reduction */
bool etd_margin_parse(etd_loss_spec *l, const etd_obj *o);
bool etd_triplet_parse(etd_loss_spec *l, const etd_obj *o);
et_tensor *etd_margin_ranking_fn(const etd_loss_spec *l, et_tensor *const *x, et_tensor *y);
et_tensor *etd_cosine_embedding_fn(const etd_loss_spec *l, et_tensor *const *x, et_tensor *y);
et_tensor *etd_triplet_fn(const etd_loss_spec *l, et_tensor *const *x, et_tensor *y);

#endif
