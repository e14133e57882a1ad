using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>
/// Reader and completer of one TCMU command ring, over a mapping it does not own (mailbox, ring and
/// data area laid out as in docs/tcmu.md §4). It moves <see cref="ScsiCommand"/>s in and out and
/// knows nothing of what they mean.
/// <para>
/// Threads: <see cref="Drain"/> runs on one thread at a time (the event loop); <see cref="Complete"/>
/// and <see cref="Flush"/> on any thread. The mapping must stay valid until every command handed
/// out has been completed.
/// </para>
/// <para>
/// Completion is out of order by slot stealing (docs/tcmu.md §8): the response of whichever command finishes
/// goes into the first CMD slot at the shared <c>cmd_tail</c>, carrying that command's cmd_id; the
/// kernel reaps in ring order and looks the command up by the id it reads from the slot.
/// Invariant that makes this safe: every published slot that can take a response ("stealable")
/// belongs to exactly one registered command, so the number of stealable slots between
/// <c>cmd_tail</c> and the parse cursor equals the number of commands not yet completed.
/// Slots that cannot take a response (too short, or running past the ring end) are never
/// registered: they get TCMU_UFLAG_UNKNOWN_OP and so complete themselves (docs/tcmu.md §5, §8).
/// </para>
/// </summary>
public sealed unsafe class TcmuRing : IDisposable
{
    private sealed class PooledCommand
    {
        public readonly ScsiCommand Command = new();
        public IoVec* Iov;
        public int IovCapacity;
    }

    private enum EntryError
    {
        None,
        /// <summary>The entry contradicts the ABI: a kernel bug or memory corruption, not the initiator's fault.</summary>
        Malformed,
        /// <summary>Opcode group whose CDB length SPC does not define (reserved or vendor specific).</summary>
        UnsupportedOpcode,
        /// <summary>Variable-length CDB longer than SPC-4 allows.</summary>
        CdbTooLong,
    }

    private const int InitialIovCapacity = 4;
    private const ulong MinDataBlockSize = 4096; // data_pages_per_blk × PAGE_SIZE, at least one page (docs/tcmu.md §4)

    private readonly byte* _map;
    private readonly long _mapLength;
    private readonly byte* _ring;
    private readonly uint _size;
    private readonly long _dataOffset;
    private readonly IRingNotifier _notifier;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, PooledCommand> _live;
    private PooledCommand[] _pool;
    private int _poolCount;
    private ushort[] _tmrIds = new ushort[64];

    private uint _parse;        // private parse cursor P (drain thread only)
    private uint _parsed;       // P as published to completers: slots before it are copied out
    private int _outstanding;   // registered commands not yet completed; under _lock
    private int _unkicked;      // completions written since the last kick
    private long _kicks;
    private long _completions;
    private long _malformed;
    private volatile bool _failed;
    private volatile string? _failure;
    private bool _disposed;

    /// <param name="map">Start of the mapping (mailbox at offset 0).</param>
    /// <param name="length">Length of the mapping (maps/map0/size).</param>
    /// <param name="notifier">Kicks the kernel after completions.</param>
    /// <param name="name">For logs (the UIO name).</param>
    /// <param name="poolSize">Commands kept ready; the kernel's queue depth for TCMU is 128 (docs/tcmu.md §12).</param>
    /// <exception cref="InvalidDataException">The mailbox is not one this code understands.</exception>
    public TcmuRing(byte* map, long length, IRingNotifier notifier, string name = "tcmu", int poolSize = 128)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        if (map == null) throw new ArgumentNullException(nameof(map));
        Name = name;
        if (length < TcmuAbi.MailboxSize)
            throw new InvalidDataException($"{name}: mapping of {length} bytes cannot hold the mailbox");
        ushort version = *(ushort*)(map + TcmuAbi.MbVersion);
        if (version != TcmuAbi.MailboxVersion)
            throw new InvalidDataException($"{name}: mailbox version {version}, expected {TcmuAbi.MailboxVersion}");
        uint cmdrOff = *(uint*)(map + TcmuAbi.MbCmdrOff);
        if (cmdrOff != TcmuAbi.MailboxSize)
            throw new InvalidDataException($"{name}: cmdr_off {cmdrOff}, expected {TcmuAbi.MailboxSize}");
        uint size = *(uint*)(map + TcmuAbi.MbCmdrSize);
        if (size == 0 || size % TcmuAbi.AlignSize != 0 || cmdrOff + (long)size > length)
            throw new InvalidDataException($"{name}: cmdr_size {size} is not a multiple of 8 inside the {length}-byte map");
        uint tail = *(uint*)(map + TcmuAbi.MbCmdTail);
        if (tail >= size || tail % TcmuAbi.AlignSize != 0)
            throw new InvalidDataException($"{name}: cmd_tail {tail} is outside the ring; reset the ring (action/reset_ring)");

        _map = map;
        _mapLength = length;
        _ring = map + cmdrOff;
        _size = size;
        _dataOffset = cmdrOff + (long)size;
        _notifier = notifier;
        Flags = *(ushort*)(map + TcmuAbi.MbFlags);
        // After a restart the kernel still holds whatever is between cmd_tail and cmd_head; start
        // there, like libtcmu does on open (docs/tcmu.md §13).
        _parse = tail;
        _parsed = tail;
        poolSize = Math.Max(1, poolSize);
        _live = new Dictionary<int, PooledCommand>(poolSize * 2);
        _pool = new PooledCommand[poolSize];
        for (int i = 0; i < poolSize; i++)
            _pool[_poolCount++] = NewPooled();
        if (!SupportsOutOfOrderCompletion)
            Log.Warning($"{name}: kernel does not announce out-of-order completion; completing by cmd_id anyway");
    }

    public string Name { get; }

    /// <summary>Capability bits of the mailbox (TCMU_MAILBOX_FLAG_CAP_*).</summary>
    public ushort Flags { get; }

    public bool SupportsOutOfOrderCompletion => (Flags & TcmuAbi.CapOutOfOrderCompletion) != 0;
    public bool SupportsReadLen => (Flags & TcmuAbi.CapReadLen) != 0;
    public bool SupportsTmr => (Flags & TcmuAbi.CapTmr) != 0;

    public uint RingSize => _size;
    public long DataOffset => _dataOffset;
    public long MapLength => _mapLength;

    /// <summary>The ring's framing is lost (entry length 0, or an entry beyond cmd_head): nothing more
    /// is parsed. Commands already handed out can still be completed. Recover with the
    /// block_dev/reset_ring recipe (docs/tcmu.md §13).</summary>
    public bool IsFailed => _failed;
    public string? FailureReason => _failure;

    /// <summary>Commands handed out and not yet completed.</summary>
    public int Outstanding
    {
        get { lock (_lock) return _outstanding; }
    }

    /// <summary>
    /// Whether the kernel has published entries (up to <c>cmd_head</c>) that <see cref="Drain"/>
    /// has not parsed yet. Any thread; a snapshot.
    /// </summary>
    public bool HasUnreadEntries =>
        !_failed && !_disposed && (uint)Volatile.Read(ref *(int*)(_map + TcmuAbi.MbCmdHead)) != Volatile.Read(ref _parse);

    public long Kicks => Interlocked.Read(ref _kicks);
    public long Completions => Interlocked.Read(ref _completions);
    public long MalformedEntries => Interlocked.Read(ref _malformed);

    /// <summary>
    /// Parses every entry between the private cursor and <c>cmd_head</c>. Commands go to
    /// <paramref name="consumer"/>; malformed ones are completed here with CHECK CONDITION.
    /// Never throws for anything found in the ring. Returns the number of entries consumed.
    /// </summary>
    public int Drain(IRingConsumer consumer)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        if (_failed || _disposed) return 0;

        // Acquire: entries before cmd_head are fully written (the kernel publishes with
        // smp_store_release; tcmu-runner broke on aarch64 without this, docs/tcmu.md §8).
        uint head = (uint)Volatile.Read(ref *(int*)(_map + TcmuAbi.MbCmdHead));
        if (head >= _size || head % TcmuAbi.AlignSize != 0)
        {
            Fail($"cmd_head {head} is outside the {_size}-byte ring or misaligned");
            return 0;
        }

        int entries = 0;
        while (_parse != head && !_failed)
        {
            uint pos = _parse;
            byte* entry = _ring + pos;
            uint lenOp = *(uint*)entry;
            uint len = TcmuAbi.EntryLength(lenOp);
            uint published = (head + _size - pos) % _size;
            if (len == 0)
            {
                Fail($"entry at ring offset {pos} has length 0");
                break;
            }
            if (len > published)
            {
                Fail($"entry at ring offset {pos} of {len} bytes runs past cmd_head {head}");
                break;
            }

            // Same arithmetic as the kernel's reaper (UPDATE_HEAD), so both sides stay in step
            // even over an entry that wrongly runs past the ring end.
            uint next = (uint)((pos + (ulong)len) % _size);
            bool inRing = pos + (ulong)len <= _size;
            entries++;
            switch (TcmuAbi.EntryOp(lenOp))
            {
                case TcmuAbi.OpPad:
                    Publish(next);
                    break;
                case TcmuAbi.OpCmd:
                    ParseCommand(entry, pos, len, inRing, next, consumer);
                    break;
                case TcmuAbi.OpTmr:
                    ParseTmr(entry, pos, len, inRing, next, consumer);
                    break;
                default:
                    // An op from a newer ABI: the kernel fails the command named in the slot itself.
                    entry[TcmuAbi.HdrUFlags] |= TcmuAbi.UFlagUnknownOp;
                    Malformed(pos, $"unknown ring opcode {TcmuAbi.EntryOp(lenOp)}, flagged UNKNOWN_OP");
                    Publish(next);
                    break;
            }
        }

        ReleaseTrailingSlots();
        return entries;
    }

    /// <summary>
    /// Writes the command's status, sense and READ_LEN into the first free CMD slot at
    /// <c>cmd_tail</c>, advances <c>cmd_tail</c> (release) and returns the command to the pool.
    /// The kernel sees it after the next <see cref="Flush"/>. Returns false, and touches nothing,
    /// if the command is not in flight on this ring (double completion).
    /// </summary>
    public bool Complete(ScsiCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        int id = command.TransportTag;
        lock (_lock)
        {
            if (!_live.TryGetValue(id, out var pooled) || !ReferenceEquals(pooled.Command, command))
            {
                // Completing an id twice breaks the ring for good in the kernel (docs/tcmu.md §8).
                Log.Error($"{Name}: completion of cmd_id {id} that is not in flight on this ring ignored");
                return false;
            }
            _live.Remove(id);
            _outstanding--;

            uint parsed = Volatile.Read(ref _parsed);
            uint tail = ReadTail();
            if (!TryFindStealableSlot(tail, parsed, out uint slot, out uint slotLen))
            {
                // Cannot happen while the invariant holds; refuse rather than write garbage that
                // would make the kernel declare the ring broken.
                Fail($"no CMD slot between cmd_tail {tail} and parse cursor {parsed} for cmd_id {id}");
                ReturnToPool(pooled);
                return false;
            }

            WriteResponse(_ring + slot, command);
            uint next = SkipUnstealable((uint)((slot + (ulong)slotLen) % _size), parsed);
            // Release: the kernel must see the response before the tail that covers it (docs/tcmu.md §8).
            Volatile.Write(ref *(int*)(_map + TcmuAbi.MbCmdTail), (int)next);
            ReturnToPool(pooled);
        }
        Interlocked.Increment(ref _completions);
        Interlocked.Increment(ref _unkicked);
        return true;
    }

    /// <summary>Kicks the kernel if completions were written since the last kick. Any thread; many
    /// completions share one kick. Returns whether it kicked. Kick errors propagate.</summary>
    public bool Flush()
    {
        if (Volatile.Read(ref _unkicked) == 0 || Interlocked.Exchange(ref _unkicked, 0) == 0)
            return false;
        _notifier.Kick();
        Interlocked.Increment(ref _kicks);
        return true;
    }

    /// <summary>Whether completions are waiting for a kick.</summary>
    public bool HasUnkickedCompletions => Volatile.Read(ref _unkicked) != 0;

    /// <summary>Frees the pooled commands' iovec arrays. Call only once no command is in flight.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            for (int i = 0; i < _poolCount; i++)
                FreeIov(_pool[i]);
            _poolCount = 0;
            if (_live.Count > 0)
                Log.Warning($"{Name}: disposed with {_live.Count} commands in flight; their buffers are leaked");
        }
    }

    /// <summary>
    /// CDB length from the operation code group (SPC-4 4.2.5.1), the same table the kernel uses to
    /// size the entry (scsi_command_size): group 0 → 6, 1 and 2 → 10, 4 → 16, 5 → 12; 7Fh is the
    /// variable-length CDB, 8 + ADDITIONAL CDB LENGTH (SPC-4 4.2.4). Group 3 other than 7Fh is
    /// reserved and groups 6 and 7 are vendor specific: SPC gives them no length, no command of
    /// this target uses them, and a guessed length would hand the command set bytes that are not
    /// the CDB, so they are answered INVALID COMMAND OPERATION CODE here. Returns -1 for those.
    /// <paramref name="available"/> bytes may be read; -2 when more are needed to decide.
    /// </summary>
    internal static int CdbLength(byte* cdb, ulong available)
    {
        if (available < 1) return -2;
        byte op = cdb[0];
        switch (op >> 5)
        {
            case 0: return 6;
            case 1:
            case 2: return 10;
            case 4: return 16;
            case 5: return 12;
            case 3 when op == 0x7F:
                if (available < 8) return -2;
                return 8 + cdb[7];
            default: return -1;
        }
    }

    private void ParseCommand(byte* entry, uint pos, uint len, bool inRing, uint next, IRingConsumer consumer)
    {
        ushort id = *(ushort*)(entry + TcmuAbi.HdrCmdId);
        if (!inRing || len < TcmuAbi.CmdEntrySize)
        {
            // No room for a response in this slot, and writing one would spill into the next entry
            // or past the ring. UNKNOWN_OP makes the kernel fail the command named here itself
            // (CHECK CONDITION, LOGICAL UNIT COMMUNICATION FAILURE, docs/tcmu.md §5); completers
            // skip the slot.
            entry[TcmuAbi.HdrUFlags] |= TcmuAbi.UFlagUnknownOp;
            Malformed(pos, $"CMD entry cmd_id {id} of {len} bytes cannot hold a response; flagged UNKNOWN_OP");
            Publish(next);
            return;
        }

        // uflags are ours to write; a stale UNKNOWN_OP bit would hide the slot from completers.
        entry[TcmuAbi.HdrUFlags] = 0;

        PooledCommand? pooled = null;
        lock (_lock)
        {
            if (id != 0 && !_live.ContainsKey(id))
            {
                pooled = TakeFromPool();
                _live.Add(id, pooled);
                _outstanding++;
            }
        }
        if (pooled == null)
        {
            // id 0 names no command and a duplicate would complete a running command twice; either
            // breaks the kernel's ring (docs/tcmu.md §8). As PAD the kernel's reaper skips the slot.
            *(uint*)entry = len | TcmuAbi.OpPad;
            Malformed(pos, id == 0 ? "CMD entry with cmd_id 0 turned into PAD" : $"CMD entry repeats in-flight cmd_id {id}; turned into PAD");
            Publish(next);
            return;
        }

        var command = pooled.Command;
        command.Reset();
        command.TransportTag = id;
        var error = Decode(entry, pos, len, pooled, out string? why, out int badCdbByte);
        // Everything needed is copied out: from here a completer may steal this slot.
        Publish(next);

        switch (error)
        {
            case EntryError.None:
                consumer.OnCommand(command);
                return;
            case EntryError.UnsupportedOpcode:
                command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
                break;
            case EntryError.CdbTooLong:
                command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(badCdbByte));
                break;
            default:
                // HARDWARE ERROR / INTERNAL TARGET FAILURE, not ILLEGAL REQUEST: the initiator's
                // CDB is not at fault, the entry the kernel built is; retrying is reasonable.
                Malformed(pos, $"cmd_id {id}: {why}");
                command.CheckCondition(SenseCode.InternalTargetFailure);
                break;
        }
        Complete(command);
    }

    private EntryError Decode(byte* entry, uint pos, uint len, PooledCommand pooled, out string? why, out int badCdbByte)
    {
        why = null;
        badCdbByte = 0;
        var command = pooled.Command;
        uint iovCount = *(uint*)(entry + TcmuAbi.ReqIovCnt);
        uint bidiCount = *(uint*)(entry + TcmuAbi.ReqIovBidiCnt);
        ulong totalIov = (ulong)iovCount + bidiCount;
        ulong iovEnd = TcmuAbi.ReqIov + totalIov * TcmuAbi.IovSize;
        if (iovEnd > len)
        {
            why = $"{iovCount}+{bidiCount} iovecs do not fit in the {len}-byte entry";
            return EntryError.Malformed;
        }

        ulong entryStart = TcmuAbi.MailboxSize + (ulong)pos;
        ulong entryEnd = entryStart + len;
        ulong cdbOff = *(ulong*)(entry + TcmuAbi.ReqCdbOff);
        // The kernel puts the CDB inside the entry, after the iovecs (docs/tcmu.md §5); anywhere
        // else is not a CDB this command owns.
        if (cdbOff < entryStart + iovEnd || cdbOff >= entryEnd)
        {
            why = $"cdb_off {cdbOff} outside the entry [{entryStart}, {entryEnd})";
            return EntryError.Malformed;
        }
        ulong cdbRoom = entryEnd - cdbOff;
        int cdbLength = CdbLength(_map + cdbOff, cdbRoom);
        if (cdbLength == -2 || (cdbLength > 0 && (ulong)cdbLength > cdbRoom))
        {
            why = $"CDB at {cdbOff} runs past the entry end {entryEnd}";
            return EntryError.Malformed;
        }

        ulong dataAreaLength = (ulong)(_mapLength - _dataOffset);
        // The kernel merges adjacent data blocks (at least a page each) into one iovec, so there
        // are never more iovecs than blocks; more means garbage, not a command to allocate for.
        if (totalIov > Math.Max(1, dataAreaLength / MinDataBlockSize))
        {
            why = $"{totalIov} iovecs for a data area of {dataAreaLength} bytes";
            return EntryError.Malformed;
        }
        ulong total = 0;
        ulong dataLength = 0;
        if (iovCount > 0) EnsureIovCapacity(pooled, iovCount);
        byte* iov = entry + TcmuAbi.ReqIov;
        for (ulong i = 0; i < totalIov; i++, iov += TcmuAbi.IovSize)
        {
            ulong @base = *(ulong*)iov;
            ulong length = *(ulong*)(iov + 8);
            // Outside the data area the iovec could point at the mailbox, the ring or unmapped
            // memory (SIGBUS, docs/tcmu.md §3).
            if (@base < (ulong)_dataOffset || @base > (ulong)_mapLength || length > (ulong)_mapLength - @base)
            {
                why = $"iovec {i} [{@base}, +{length}) outside the data area [{_dataOffset}, {_mapLength})";
                return EntryError.Malformed;
            }
            total += length;
            if (total > dataAreaLength)
            {
                why = $"iovecs add up to more than the {dataAreaLength}-byte data area";
                return EntryError.Malformed;
            }
            if (i < iovCount)
            {
                pooled.Iov[i] = new IoVec((nint)(_map + @base), (nint)length);
                dataLength += length;
            }
        }

        if (cdbLength == -1)
            return EntryError.UnsupportedOpcode;
        if (cdbLength > ScsiCommand.MaxCdbLength)
        {
            badCdbByte = 7; // ADDITIONAL CDB LENGTH
            return EntryError.CdbTooLong;
        }
        command.SetCdb(new ReadOnlySpan<byte>(_map + cdbOff, cdbLength));
        command.Data = iovCount == 0 ? DataBuffer.Empty : new DataBuffer(pooled.Iov, (int)iovCount, (long)dataLength);
        return EntryError.None;
    }

    private void ParseTmr(byte* entry, uint pos, uint len, bool inRing, uint next, IRingConsumer consumer)
    {
        if (!inRing || len < TcmuAbi.TmrEntrySize)
        {
            Malformed(pos, $"TMR entry of {len} bytes is too short or runs past the ring end; ignored");
            Publish(next);
            return;
        }
        uint count = *(uint*)(entry + TcmuAbi.TmrCmdCnt);
        if (count > (len - TcmuAbi.TmrEntrySize) / 2)
        {
            Malformed(pos, $"TMR entry lists {count} ids but has room for {(len - TcmuAbi.TmrEntrySize) / 2}; ignored");
            Publish(next);
            return;
        }
        var type = (TmrType)entry[TcmuAbi.TmrType];
        if (_tmrIds.Length < count)
            _tmrIds = new ushort[Math.Max(count, (uint)_tmrIds.Length * 2)];
        new ReadOnlySpan<ushort>(entry + TcmuAbi.TmrCmdIds, (int)count).CopyTo(_tmrIds);
        // A TMR entry needs no response; it only has to be passed by cmd_tail (docs/tcmu.md §5).
        Publish(next);
        consumer.OnTaskManagement(type, new ReadOnlySpan<ushort>(_tmrIds, 0, (int)count));
    }

    private void WriteResponse(byte* slot, ScsiCommand command)
    {
        *(ushort*)(slot + TcmuAbi.HdrCmdId) = (ushort)command.TransportTag;
        byte uflags = 0;
        uint readLength = 0;
        if (command.DataInLength >= 0 && SupportsReadLen)
        {
            // Lets the kernel copy back only what was produced: a reused data block still holds
            // the previous command's bytes (docs/tcmu.md §4).
            uflags |= TcmuAbi.UFlagReadLen;
            readLength = (uint)Math.Min(command.DataInLength, uint.MaxValue);
        }
        slot[TcmuAbi.RspScsiStatus] = (byte)command.Status;
        slot[TcmuAbi.RspScsiStatus + 1] = 0;
        *(ushort*)(slot + TcmuAbi.RspScsiStatus + 2) = 0;
        *(uint*)(slot + TcmuAbi.RspReadLen) = readLength;
        var sense = new Span<byte>(slot + TcmuAbi.RspSenseBuffer, TcmuAbi.SenseBufferSize);
        var ours = command.Sense;
        if (ours.Length > sense.Length) ours = ours.Slice(0, sense.Length);
        ours.CopyTo(sense);
        sense.Slice(ours.Length).Clear();
        slot[TcmuAbi.HdrUFlags] = uflags;
    }

    private bool IsStealable(uint pos, uint lenOp)
    {
        uint len = TcmuAbi.EntryLength(lenOp);
        return TcmuAbi.EntryOp(lenOp) == TcmuAbi.OpCmd
            && (_ring[pos + TcmuAbi.HdrUFlags] & TcmuAbi.UFlagUnknownOp) == 0
            && len >= TcmuAbi.CmdEntrySize
            && pos + (ulong)len <= _size;
    }

    private bool TryFindStealableSlot(uint tail, uint parsed, out uint slot, out uint slotLength)
    {
        uint pos = tail;
        while (pos != parsed)
        {
            uint lenOp = *(uint*)(_ring + pos);
            uint len = TcmuAbi.EntryLength(lenOp);
            if (len == 0) break;
            if (IsStealable(pos, lenOp))
            {
                slot = pos;
                slotLength = len;
                return true;
            }
            pos = (uint)((pos + (ulong)len) % _size);
        }
        slot = 0;
        slotLength = 0;
        return false;
    }

    /// <summary>Moves past PAD, TMR and self-completing slots, which the kernel reaper skips or
    /// completes on its own; stops at the next slot that is waiting for a response.</summary>
    private uint SkipUnstealable(uint pos, uint parsed)
    {
        while (pos != parsed)
        {
            uint lenOp = *(uint*)(_ring + pos);
            uint len = TcmuAbi.EntryLength(lenOp);
            if (len == 0 || IsStealable(pos, lenOp)) break;
            pos = (uint)((pos + (ulong)len) % _size);
        }
        return pos;
    }

    /// <summary>With nothing in flight, the slots between cmd_tail and the cursor are all PAD, TMR
    /// or self-completing: pass them so the kernel gets the space (and the UNKNOWN_OP answers) back.</summary>
    private void ReleaseTrailingSlots()
    {
        lock (_lock)
        {
            if (_outstanding != 0) return;
            uint parsed = Volatile.Read(ref _parsed);
            uint tail = ReadTail();
            if (tail == parsed) return;
            uint next = SkipUnstealable(tail, parsed);
            if (next == tail) return;
            Volatile.Write(ref *(int*)(_map + TcmuAbi.MbCmdTail), (int)next);
        }
        Interlocked.Increment(ref _unkicked);
    }

    private uint ReadTail() => (uint)Volatile.Read(ref *(int*)(_map + TcmuAbi.MbCmdTail));

    private void Publish(uint next)
    {
        _parse = next;
        Volatile.Write(ref _parsed, next);
    }

    private void Fail(string reason)
    {
        if (_failed) return;
        _failure = reason;
        _failed = true;
        Log.Error($"{Name}: ring failed, no longer consuming: {reason}. Reset it with action/block_dev and action/reset_ring.");
    }

    private void Malformed(uint pos, string reason)
    {
        Interlocked.Increment(ref _malformed);
        Log.Warning($"{Name}: malformed ring entry at offset {pos}: {reason}");
    }

    private PooledCommand TakeFromPool()
    {
        if (_poolCount > 0) return _pool[--_poolCount];
        // More in flight than the pool was sized for: grow (allocates, but only up to the peak).
        return NewPooled();
    }

    private void ReturnToPool(PooledCommand pooled)
    {
        pooled.Command.Reset();
        if (_disposed)
        {
            FreeIov(pooled);
            return;
        }
        if (_poolCount == _pool.Length)
            Array.Resize(ref _pool, _pool.Length * 2);
        _pool[_poolCount++] = pooled;
    }

    private static PooledCommand NewPooled()
    {
        var pooled = new PooledCommand();
        pooled.Iov = (IoVec*)NativeMemory.Alloc((nuint)InitialIovCapacity, (nuint)sizeof(IoVec));
        pooled.IovCapacity = InitialIovCapacity;
        return pooled;
    }

    private static void EnsureIovCapacity(PooledCommand pooled, uint count)
    {
        if (count <= (uint)pooled.IovCapacity) return;
        int capacity = (int)Math.Max(count, (uint)pooled.IovCapacity * 2);
        pooled.Iov = (IoVec*)NativeMemory.Realloc(pooled.Iov, (nuint)capacity * (nuint)sizeof(IoVec));
        pooled.IovCapacity = capacity;
    }

    private static void FreeIov(PooledCommand pooled)
    {
        NativeMemory.Free(pooled.Iov);
        pooled.Iov = null;
        pooled.IovCapacity = 0;
    }
}
