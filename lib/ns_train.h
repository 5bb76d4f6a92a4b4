#ifndef NS_TRAIN_H
#define NS_TRAIN_H
/* placeholder: module under construction */
#endif
