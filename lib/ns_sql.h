#ifndef NS_SQL_H
#define NS_SQL_H
/* placeholder: module under construction */
#endif
