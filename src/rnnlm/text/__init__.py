"""A wing: any text as the model reads it (`data=timemachine` runs it; `data=book` the book's
`rnnlm.data.TimeMachine`).

data     `TextData(TimeMachine)`: characters, bytes or words; contiguous parts; streams; a test part
corpus   a text file into token codes at any size (byte cleaning, a memory-mapped cache)
streams  contiguous streams read side by side, the state carried from batch to batch
counts   token counts and characters per token, a chunk at a time
sampler  the windows' shuffle that never holds a permutation, sharded by rank
"""
