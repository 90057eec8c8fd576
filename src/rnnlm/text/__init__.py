"""A wing: any text as the model reads it (`data=timemachine` runs it; `data=book` the book's
`rnnlm.data.TimeMachine`).

data     `TextData(TimeMachine)`: characters, bytes or words; contiguous parts; streams; a test part
corpus   a text file into token codes at any size, a chunk at a time (byte cleaning)
cache    the text encoded once into a file next to it, memory-mapped
streams  contiguous streams read side by side, the state carried from batch to batch
scored   the text a checkpoint scores, read as its run read its own
counts   token counts and characters per token, a chunk at a time
sampler  the windows' shuffle that never holds a permutation, sharded by rank
"""
