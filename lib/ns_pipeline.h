#ifndef NS_PIPELINE_H
#define NS_PIPELINE_H
/* placeholder: module under construction */
#endif
