"""Training loops: contrastive pretraining (:mod:`.pretrain`) and classification (:mod:`.classify`)."""
