#ifndef NS_MODEL_H
#define NS_MODEL_H
/* placeholder: module under construction */
#endif
