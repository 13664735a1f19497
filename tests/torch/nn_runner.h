/*
 * nn_runner.h - helpers nn_runner.c shares with nn_runner_more.c (the
 * commands of the losses, optimizers and schedulers added later).
 */
#ifndef NN_RUNNER_H
#define NN_RUNNER_H

#include <stdbool.h>

#include <easytorch/easytorch.h>

/* Print "nn_runner: <what>: <et_errmsg()>" to stderr; returns 1. */
int fail(const char *what);
/* Load a safetensors file (NULL + message on failure). */
et_tensor_dict *load(const char *path);
/* Fresh leaf copy of a dict entry, requiring grad if asked (NULL + message if missing). */
et_tensor *get(const et_tensor_dict *d, const char *name, bool grad);
/* Load every "p.<name>" entry of `in` into m's parameters; 0 or 1. */
int load_params(et_module *m, const et_tensor_dict *in);
/* Save d to path and free it; 0 or 1. */
int save(et_tensor_dict *d, const char *path);

/* nn_runner_more.c: the module of a spec "name:a:b:c" with nargs numbers
 * given, or NULL. */
et_module *module_from_spec_more(const char *name, int nargs, double a, double b, double c);

/* nn_runner_more.c: runs argv[1] if it is one of its commands and returns
 * its exit status, else returns -1. */
int nn_runner_more(int argc, char **argv);
/* nn_runner_conv.c: the same for the image layers' commands. */
int nn_runner_conv(int argc, char **argv);
/* nn_runner_attention.c: the same for the attention layers' command. */
int nn_runner_attention(int argc, char **argv);
/* nn_runner_graph.c: the graph modules' command. */
int nn_runner_graph(int argc, char **argv);
/* nn_runner_embed.c: an Embedding trained over steps. */
int nn_runner_embed(int argc, char **argv);

#endif
