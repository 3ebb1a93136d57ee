/* The consumer thread: reads the lineage topic and writes its records in batches. */
#ifndef HL_AUDITOR_CONSUMER_H
#define HL_AUDITOR_CONSUMER_H

/* Joins the group and writes batches until stop. arg is the aud_state_t *, borrowed. */
void *hl_consumer_main(void *arg);

#endif
