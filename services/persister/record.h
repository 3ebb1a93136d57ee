/* The old name of event_record.h, kept only because lineage.h (rewritten by the contract
 * library work) still includes it; remove once lineage.h includes event_record.h. */
#ifndef PST_RECORD_H
#define PST_RECORD_H

#include "event_record.h"

#endif
