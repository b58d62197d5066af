"""Object detectors (registered with task="detection"): the shared core (``base``: targets, NMS, serving;
``anchors``: anchor generation, IoU matching, box coding), YOLO and SSD (one-stage), Faster/Mask R-CNN
(two-stage)."""
