#ifndef NS_EVAL_H
#define NS_EVAL_H
/* placeholder: module under construction */
#endif
