/* liblvmmed — umbrella header: include this one.
 *
 * liblvmmed implements LVM-Med self-supervised pretraining of medical-image
 * backbones by second-order graph matching (Nguyen et al., NeurIPS 2023).
 */
#ifndef LVMMED_H
#define LVMMED_H

#include <lvmmed/export.h>
#include <lvmmed/version.h>
#include <lvmmed/status.h>
#include <lvmmed/ctx.h>
#include <lvmmed/backbone.h>
#include <lvmmed/image.h>
#include <lvmmed/augment.h>
#include <lvmmed/dataset.h>
#include <lvmmed/gm.h>
#include <lvmmed/affinity.h>
#include <lvmmed/imle.h>
#include <lvmmed/optim.h>
#include <lvmmed/pretrain.h>

#endif /* LVMMED_H */
