using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Simulation;

/// <summary>
/// Plays the kernel side of a TCMU ring (target_core_user.c, docs/tcmu.md §4, §5, §8, §11) in ordinary
/// native memory with the exact layout: a 128-byte mailbox, a command ring of configurable size and
/// a data area of fixed-size blocks. It queues CMD entries the way <c>queue_cmd_ring</c> does
/// (data blocks lowest-free-first, adjacent blocks merged into one iovec, Data-Out copied in, PAD
/// over the tail when an entry does not fit before the ring end, <c>cmd_head</c> published with
/// release semantics), queues TMR entries, and on <see cref="Kick"/> reaps from its own
/// last-cleaned offset to <c>cmd_tail</c> like <c>tcmu_handle_completions</c>: PAD and TMR are
/// skipped, the command is found by the cmd_id in the slot, an unknown or repeated id breaks the
/// ring (and throws here, loudly).
/// <para>Self-contained on purpose (only the BCL): the benchmarks link this file.</para>
/// </summary>
public sealed unsafe class RingSimulator : IDisposable
{
    public const int MailboxSize = 128;
    public const int CmdEntrySize = 112;
    public const int SenseBufferSize = 96;
    public const byte OpPad = 0, OpCmd = 1, OpTmr = 2;
    public const byte UFlagUnknownOp = 0x1, UFlagReadLen = 0x2;
    public const ushort AllCapabilities = 0xF; // OOOC | READ_LEN | TMR | KEEP_BUF, as K6.1 sets them

    public readonly record struct Submitted(ushort CmdId, long Ticket, uint RingOffset);

    /// <summary>What the kernel received for one command.</summary>
    public sealed class Completion
    {
        public ushort CmdId { get; init; }
        public long Ticket { get; init; }
        public byte Status { get; init; }
        public byte[] Sense { get; init; } = [];
        /// <summary>Data-In the kernel would send (null for commands without Data-In or when not sent).</summary>
        public byte[]? DataIn { get; init; }
        /// <summary>rsp.read_len when TCMU_UFLAG_READ_LEN was set.</summary>
        public uint? ReadLen { get; init; }
        /// <summary>The slot carried UNKNOWN_OP: the core failed it with NOT READY 08h/00h.</summary>
        public bool UnknownOp { get; init; }
    }

    public delegate void EntryFiller(Span<byte> entry, long entryMapOffset);

    private readonly object _gate = new();
    private readonly bool[] _blockUsed;
    private readonly int _maxCommands;
    private readonly bool[] _inFlight;
    private readonly long[] _ticketOf;
    private readonly bool[] _isDataIn;
    private readonly long[] _dataLength;
    private readonly long[][] _iovOffset;
    private readonly long[][] _iovLength;
    private readonly int[] _iovCount;
    private readonly Dictionary<long, Completion> _byTicket = new();
    private readonly Dictionary<ushort, Completion> _latestById = new();
    private readonly List<Completion> _completions = new();
    private uint _head;
    private uint _lastCleaned;
    private long _nextTicket = 1;
    private long _completed;
    private long _kicks;
    private long _notifications;
    private string? _broken;

    public RingSimulator(int cmdrSize = 64 * 1024 - MailboxSize, int dataBlocks = 256, int blockSize = 4096,
        ushort flags = AllCapabilities, int maxCommands = 512, bool recordCompletions = true)
    {
        if (cmdrSize <= 0 || cmdrSize % 8 != 0) throw new ArgumentException("cmdr_size must be a positive multiple of 8", nameof(cmdrSize));
        if (maxCommands is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(maxCommands));
        CmdrSize = (uint)cmdrSize;
        BlockSize = blockSize;
        DataBlocks = dataBlocks;
        DataOffset = MailboxSize + (long)cmdrSize;
        MapLength = DataOffset + (long)dataBlocks * blockSize;
        RecordCompletions = recordCompletions;
        Map = (byte*)NativeMemory.AlignedAlloc((nuint)MapLength, 4096);
        NativeMemory.Clear(Map, (nuint)MapLength);
        *(ushort*)(Map + 0) = 2;               // version
        *(ushort*)(Map + 2) = flags;           // capability flags
        *(uint*)(Map + 4) = MailboxSize;       // cmdr_off
        *(uint*)(Map + 8) = (uint)cmdrSize;    // cmdr_size
        _blockUsed = new bool[dataBlocks];
        _maxCommands = maxCommands;
        _inFlight = new bool[maxCommands + 1];
        _ticketOf = new long[maxCommands + 1];
        _isDataIn = new bool[maxCommands + 1];
        _dataLength = new long[maxCommands + 1];
        _iovOffset = new long[maxCommands + 1][];
        _iovLength = new long[maxCommands + 1][];
        _iovCount = new int[maxCommands + 1];
    }

    public byte* Map { get; private set; }
    public long MapLength { get; }
    public uint CmdrSize { get; }
    public long DataOffset { get; }
    public int BlockSize { get; }
    public int DataBlocks { get; }
    public bool RecordCompletions { get; }

    /// <summary>Raised after new entries are published (the UIO event): wire it to an eventfd.</summary>
    public event Action? Notified;

    public uint Head { get { lock (_gate) return _head; } }
    public uint LastCleaned { get { lock (_gate) return _lastCleaned; } }
    public uint CmdTail => (uint)Volatile.Read(ref *(int*)(Map + 64));
    public long CompletedCount => Interlocked.Read(ref _completed);
    public long Kicks => Interlocked.Read(ref _kicks);
    public long Notifications => Interlocked.Read(ref _notifications);

    /// <summary>Set once the "kernel" found garbage between last-cleaned and cmd_tail.</summary>
    public string? BrokenReason { get { lock (_gate) return _broken; } }

    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                int n = 0;
                for (int i = 1; i <= _maxCommands; i++) if (_inFlight[i]) n++;
                return n;
            }
        }
    }

    public IReadOnlyList<Completion> Completions
    {
        get { lock (_gate) return _completions.ToArray(); }
    }

    public Completion? ForTicket(long ticket)
    {
        lock (_gate) return _byTicket.GetValueOrDefault(ticket);
    }

    public Completion? LatestFor(ushort cmdId)
    {
        lock (_gate) return _latestById.GetValueOrDefault(cmdId);
    }

    /// <summary>Queues a SCSI command: Data-Out bytes, or a Data-In length (not both).
    /// <paramref name="fragment"/> takes every other free block, so the data spans several iovecs.
    /// Returns false when ring space, data blocks or ids run out (the kernel's qfull case).</summary>
    public bool TrySubmit(ReadOnlySpan<byte> cdb, ReadOnlySpan<byte> dataOut, int dataInLength, out Submitted submitted, bool fragment = false)
    {
        if (dataOut.Length > 0 && dataInLength > 0) throw new ArgumentException("BIDI is not simulated");
        if (cdb.Length is 0 or > 260) throw new ArgumentException("CDB length", nameof(cdb));
        bool notify;
        lock (_gate)
        {
            submitted = default;
            long dataLength = dataOut.Length > 0 ? dataOut.Length : Math.Max(0, dataInLength);
            int blocks = (int)((dataLength + BlockSize - 1) / BlockSize);
            Span<int> chosen = blocks <= 256 ? stackalloc int[blocks] : new int[blocks];
            if (!PickBlocks(chosen, fragment)) return false;
            int runs = CountRuns(chosen);
            uint size = EntrySize(runs, cdb.Length);
            if (!TryReserve(size, out uint pos)) return false;
            int id = AllocateId();
            if (id == 0) return false;

            foreach (int b in chosen) _blockUsed[b] = true;
            WritePadIfNeeded(size);
            pos = _head;
            byte* e = Ring + pos;
            NativeMemory.Clear(e, size);
            *(uint*)e = size | OpCmd;
            *(ushort*)(e + 4) = (ushort)id;
            *(uint*)(e + 8) = (uint)runs;
            long cdbOff = MailboxSize + pos + (size - Round8(cdb.Length));
            *(ulong*)(e + 24) = (ulong)cdbOff;
            cdb.CopyTo(new Span<byte>(Map + cdbOff, cdb.Length));

            EnsureIovArrays(id, runs);
            long remaining = dataLength;
            int r = 0;
            for (int i = 0; i < chosen.Length;)
            {
                int j = i + 1;
                while (j < chosen.Length && chosen[j] == chosen[j - 1] + 1) j++;
                long off = DataOffset + (long)chosen[i] * BlockSize;
                long len = Math.Min(remaining, (long)(j - i) * BlockSize);
                *(ulong*)(e + 48 + 16 * r) = (ulong)off;
                *(ulong*)(e + 48 + 16 * r + 8) = (ulong)len;
                _iovOffset[id][r] = off;
                _iovLength[id][r] = len;
                remaining -= len;
                r++;
                i = j;
            }
            _iovCount[id] = runs;
            if (dataOut.Length > 0) Scatter(id, dataOut);

            long ticket = _nextTicket++;
            Track(id, ticket, dataInLength > 0, dataLength);
            submitted = new Submitted((ushort)id, ticket, pos);
            Advance(size);
            notify = true;
        }
        if (notify) Notify();
        return true;
    }

    public Submitted Submit(ReadOnlySpan<byte> cdb, ReadOnlySpan<byte> dataOut = default, int dataInLength = 0, bool fragment = false)
        => TrySubmit(cdb, dataOut, dataInLength, out var s, fragment) ? s : throw new InvalidOperationException("ring or data area full");

    /// <summary>
    /// Queues an arbitrary entry of <paramref name="length"/> bytes (a multiple of 8) for malformed-input
    /// tests. The header is written as (length | op, cmd_id) first; <paramref name="fill"/> then sees
    /// the entry's bytes inside the ring and may overwrite anything, header included. With
    /// <paramref name="trackId"/> the entry gets a fresh cmd_id that the reaper will accept. With
    /// <paramref name="allowRunPastEnd"/> no PAD is inserted and the entry may run past the ring end
    /// (only the part inside the ring is written; cmd_head advances modulo the ring size).
    /// </summary>
    public bool TrySubmitRaw(int length, byte op, EntryFiller? fill, bool trackId, out Submitted submitted, bool allowRunPastEnd = false)
    {
        if (length < 8 || length % 8 != 0) throw new ArgumentException("length must be a multiple of 8, at least 8", nameof(length));
        lock (_gate)
        {
            submitted = default;
            uint size = (uint)length;
            uint pos;
            if (allowRunPastEnd)
            {
                if (size >= Free()) return false;
                pos = _head;
            }
            else
            {
                if (!TryReserve(size, out pos)) return false;
                WritePadIfNeeded(size);
                pos = _head;
            }
            int id = 0;
            if (trackId)
            {
                id = AllocateId();
                if (id == 0) return false;
            }
            int inRing = (int)Math.Min(size, CmdrSize - pos);
            byte* e = Ring + pos;
            NativeMemory.Clear(e, (nuint)inRing);
            *(uint*)e = size | (uint)(op & 7);
            *(ushort*)(e + 4) = (ushort)id;
            fill?.Invoke(new Span<byte>(e, inRing), MailboxSize + pos);
            long ticket = _nextTicket++;
            if (trackId)
            {
                _iovCount[id] = 0;
                Track(id, ticket, false, 0);
            }
            submitted = new Submitted((ushort)id, ticket, pos);
            Advance(size);
        }
        Notify();
        return true;
    }

    /// <summary>Queues a TMR notification listing <paramref name="cmdIds"/> (queue_tmr_ring).</summary>
    public bool TrySubmitTmr(byte tmrType, ReadOnlySpan<ushort> cmdIds)
    {
        lock (_gate)
        {
            uint size = Round8(32 + 2 * cmdIds.Length);
            if (!TryReserve(size, out _)) return false;
            WritePadIfNeeded(size);
            byte* e = Ring + _head;
            NativeMemory.Clear(e, size);
            *(uint*)e = size | OpTmr;
            e[8] = tmrType;
            *(uint*)(e + 12) = (uint)cmdIds.Length;
            cmdIds.CopyTo(new Span<ushort>(e + 32, cmdIds.Length));
            Advance(size);
        }
        Notify();
        return true;
    }

    /// <summary>The 4-byte write to /dev/uioN: reaps every slot up to cmd_tail. Throws when the
    /// ring would be broken in the kernel (unknown or repeated cmd_id, garbage before cmd_tail).</summary>
    public void Kick()
    {
        Interlocked.Increment(ref _kicks);
        lock (_gate)
        {
            if (_broken != null) throw new InvalidOperationException("ring is broken: " + _broken);
            uint tail = CmdTail;
            if (tail >= CmdrSize || tail % 8 != 0) Break($"cmd_tail {tail} outside the ring");
            uint used = (_head + CmdrSize - _lastCleaned) % CmdrSize;
            uint upTo = (tail + CmdrSize - _lastCleaned) % CmdrSize;
            if (upTo > used) Break($"cmd_tail {tail} is beyond cmd_head {_head} (last cleaned {_lastCleaned})");

            while (_lastCleaned != tail)
            {
                uint pos = _lastCleaned;
                byte* e = Ring + pos;
                uint lenOp = *(uint*)e;
                uint len = lenOp & ~7u;
                byte op = (byte)(lenOp & 7);
                if (len == 0) Break($"zero-length entry at {pos} while reaping");
                uint next = (uint)((pos + (ulong)len) % CmdrSize);
                if (op is OpPad or OpTmr)
                {
                    _lastCleaned = next;
                    continue;
                }
                ushort id = *(ushort*)(e + 4);
                if (id == 0 || id > _maxCommands || !_inFlight[id])
                    Break($"cmd_id {id} in the slot at {pos} is not in flight (unknown or completed twice)");
                byte uflags = e[7];
                Completion completion;
                if ((uflags & UFlagUnknownOp) != 0)
                {
                    // target_complete_cmd(TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE): NOT READY 08h/00h.
                    var sense = new byte[SenseBufferSize];
                    sense[0] = 0x70; sense[2] = 0x02; sense[7] = 0x0A; sense[12] = 0x08;
                    completion = new Completion { CmdId = id, Ticket = _ticketOf[id], Status = 0x02, Sense = sense, UnknownOp = true };
                }
                else
                {
                    if (len < CmdEntrySize || pos + (ulong)CmdEntrySize > CmdrSize)
                        Break($"response for cmd_id {id} written into a {len}-byte slot at {pos}");
                    byte status = e[8];
                    uint? readLen = (uflags & UFlagReadLen) != 0 ? *(uint*)(e + 12) : null;
                    byte[]? dataIn = null;
                    if (RecordCompletions && _isDataIn[id] && (status == 0 || readLen is > 0))
                    {
                        long n = readLen is { } rl ? Math.Min(rl, _dataLength[id]) : _dataLength[id];
                        dataIn = Gather(id, n);
                    }
                    completion = RecordCompletions
                        ? new Completion { CmdId = id, Ticket = _ticketOf[id], Status = status, Sense = new ReadOnlySpan<byte>(e + 16, SenseBufferSize).ToArray(), DataIn = dataIn, ReadLen = readLen }
                        : null!;
                }
                if (RecordCompletions)
                {
                    _completions.Add(completion);
                    _byTicket[completion.Ticket] = completion;
                    _latestById[id] = completion;
                }
                Release(id);
                _completed++;
                _lastCleaned = next;
            }
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> commands have been reaped.</summary>
    public bool WaitForCompletions(long count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (_completed < count)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(_gate, left);
            }
            return true;
        }
    }

    public void Dispose()
    {
        if (Map != null)
        {
            NativeMemory.AlignedFree(Map);
            Map = null;
        }
    }

    private byte* Ring => Map + MailboxSize;

    private static uint Round8(int n) => (uint)((n + 7) & ~7);

    private static uint EntrySize(int iovs, int cdbLength) => (uint)Math.Max(48 + 16 * iovs, CmdEntrySize) + Round8(cdbLength);

    private uint Free() => (_lastCleaned + CmdrSize - _head - 1) % CmdrSize;

    // is_ring_space_avail: the entry plus, if it does not fit before the end, the PAD over the tail.
    private bool TryReserve(uint size, out uint pos)
    {
        pos = _head;
        uint toEnd = CmdrSize - _head;
        uint need = toEnd < size ? toEnd + size : size;
        return need <= Free() && size <= CmdrSize / 2;
    }

    private void WritePadIfNeeded(uint size)
    {
        uint toEnd = CmdrSize - _head;
        if (toEnd >= size) return;
        byte* e = Ring + _head;
        *(uint*)e = toEnd | OpPad;
        *(ushort*)(e + 4) = 0;
        e[6] = 0;
        e[7] = 0;
        _head = 0;
    }

    private void Advance(uint size)
    {
        _head = (uint)((_head + (ulong)size) % CmdrSize);
        // UPDATE_HEAD: smp_store_release, after the entry is complete.
        Volatile.Write(ref *(int*)(Map + 12), (int)_head);
    }

    private void Notify()
    {
        Interlocked.Increment(ref _notifications);
        Notified?.Invoke();
    }

    private int AllocateId()
    {
        for (int i = 1; i <= _maxCommands; i++)
            if (!_inFlight[i]) return i;
        return 0;
    }

    private void Track(int id, long ticket, bool dataIn, long dataLength)
    {
        _inFlight[id] = true;
        _ticketOf[id] = ticket;
        _isDataIn[id] = dataIn;
        _dataLength[id] = dataLength;
    }

    private void Release(int id)
    {
        for (int r = 0; r < _iovCount[id]; r++)
        {
            int first = (int)((_iovOffset[id][r] - DataOffset) / BlockSize);
            int count = (int)((_iovLength[id][r] + BlockSize - 1) / BlockSize);
            for (int b = first; b < first + count; b++) _blockUsed[b] = false;
        }
        _iovCount[id] = 0;
        _inFlight[id] = false;
    }

    private bool PickBlocks(Span<int> chosen, bool fragment)
    {
        int n = 0;
        bool skip = false;
        for (int b = 0; b < DataBlocks && n < chosen.Length; b++)
        {
            if (_blockUsed[b]) continue;
            if (fragment && skip)
            {
                skip = false;
                continue;
            }
            chosen[n++] = b;
            skip = true;
        }
        return n == chosen.Length;
    }

    private static int CountRuns(ReadOnlySpan<int> blocks)
    {
        int runs = 0;
        for (int i = 0; i < blocks.Length; i++)
            if (i == 0 || blocks[i] != blocks[i - 1] + 1) runs++;
        return runs;
    }

    private void EnsureIovArrays(int id, int runs)
    {
        if (_iovOffset[id] == null || _iovOffset[id].Length < runs)
        {
            int n = Math.Max(runs, 4);
            _iovOffset[id] = new long[n];
            _iovLength[id] = new long[n];
        }
    }

    private void Scatter(int id, ReadOnlySpan<byte> data)
    {
        int done = 0;
        for (int r = 0; r < _iovCount[id]; r++)
        {
            int len = (int)_iovLength[id][r];
            data.Slice(done, len).CopyTo(new Span<byte>(Map + _iovOffset[id][r], len));
            done += len;
        }
    }

    private byte[] Gather(int id, long length)
    {
        var result = new byte[length];
        long done = 0;
        for (int r = 0; r < _iovCount[id] && done < length; r++)
        {
            int len = (int)Math.Min(_iovLength[id][r], length - done);
            new ReadOnlySpan<byte>(Map + _iovOffset[id][r], len).CopyTo(result.AsSpan((int)done));
            done += len;
        }
        return result;
    }

    private void Break(string reason)
    {
        _broken = reason;
        Monitor.PulseAll(_gate);
        throw new InvalidOperationException("ring is broken: " + reason);
    }
}
