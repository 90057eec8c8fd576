"""A wing: any text as the model reads it (`data=timemachine`; `data=book` is the book's own).

data     `TextData(TimeMachine)`: characters, bytes or words; contiguous parts; streams; a test part
corpus   a text file into token codes at any size (byte cleaning); cache: encoded once, mapped
streams  contiguous streams read side by side, the state carried from batch to batch
scored   the text a checkpoint scores; counts: token counts, characters per token
sampler  the windows' shuffle that never holds a permutation, sharded by rank"""
