/*
 * container.c - torch.nn.ModuleList and the walk over named children
 * (named_children, get_submodule) that graph modules resolve targets with.
 * Sequential and the child registration itself are module.c's.
 */
#include "nn/module_internal.h"

#include <string.h>

static et_tensor *module_list_forward(et_module *m, et_tensor *x)
{
    (void)m;
    (void)x;
    et_set_error(ET_ERR_STATE, "ModuleList: a ModuleList has no forward (call its modules, "
                 "e.g. from a graph node with target \"<list>.<i>\")");
    return NULL;
}

et_module *et_module_list_new(void)
{
    et_module *m = nn_module_alloc("ModuleList", module_list_forward);
    if (m)
        m->indexed = true;
    return m;
}

et_status et_module_list_append(et_module *list, et_module *child)
{
    if (list && list->forward != module_list_forward) {
        bool owned_elsewhere = child == list || (child && child->parent);
        et_module_free(owned_elsewhere ? NULL : child);
        return et_set_error(ET_ERR_ARG, "module_list_append: not a ModuleList (a %s)",
                            list->type);
    }
    return et_sequential_append(list, child);
}

int et_module_num_children(const et_module *m)
{
    return m ? m->nchildren : 0;
}

const char *et_module_child_name(const et_module *m, int i)
{
    if (!m || i < 0 || i >= m->nchildren) {
        et_set_error(ET_ERR_INDEX, "module_child_name: index %d out of range (%d children)", i,
                     m ? m->nchildren : 0);
        return NULL;
    }
    return m->child_names[i];
}

et_module *et_module_child(const et_module *m, int i)
{
    if (!m || i < 0 || i >= m->nchildren) {
        et_set_error(ET_ERR_INDEX, "module_child: index %d out of range (%d children)", i,
                     m ? m->nchildren : 0);
        return NULL;
    }
    return m->children[i];
}

et_module *et_module_get_submodule(const et_module *m, const char *target)
{
    if (!m || !target) {
        et_set_error(ET_ERR_ARG, "get_submodule: NULL %s", m ? "target" : "module");
        return NULL;
    }
    const et_module *cur = m;
    const char *p = target;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        const et_module *next = NULL;
        for (int i = 0; i < cur->nchildren && !next; i++)
            if (strlen(cur->child_names[i]) == len && !strncmp(cur->child_names[i], p, len))
                next = cur->children[i];
        if (!next) {
            et_set_error(ET_ERR_ARG, "get_submodule: %s has no attribute `%.*s` (target \"%s\")",
                         cur->type, (int)len, p, target);
            return NULL;
        }
        cur = next;
        p = dot ? dot + 1 : p + len;
        if (dot && !*p) {
            et_set_error(ET_ERR_ARG, "get_submodule: target \"%s\" ends with '.'", target);
            return NULL;
        }
    }
    return (et_module *)cur;
}
