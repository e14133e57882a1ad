namespace TcmuSharedVolume.Scsi;

/// <summary>
/// One SCSI command as the command set sees it: the CDB, the data buffer, and the result.
/// Instances are pooled and reused by the transport, so nothing here allocates per command.
/// </summary>
public sealed class ScsiCommand
{
    /// <summary>Longest CDB we accept: a variable-length CDB is at most 260 bytes (SPC-4 4.2.4).</summary>
    public const int MaxCdbLength = 260;

    private readonly byte[] _cdb = new byte[MaxCdbLength];
    private readonly byte[] _sense = new byte[SenseData.MaxLength];

    public int CdbLength { get; private set; }
    public ReadOnlySpan<byte> Cdb => _cdb.AsSpan(0, CdbLength);
    public byte OperationCode => _cdb[0];

    /// <summary>Data-Out (initiator's data) or Data-In (where the answer goes).</summary>
    public DataBuffer Data { get; set; }

    /// <summary>Whether CHECK CONDITION carries descriptor sense (D_SENSE in the Control mode page).</summary>
    public bool DescriptorSense { get; set; }

    /// <summary>Transport's identifier for the command (TCMU cmd_id); opaque to the command set.</summary>
    public int TransportTag { get; set; }

    public ScsiStatus Status { get; private set; }
    public int SenseLength { get; private set; }
    public ReadOnlySpan<byte> Sense => _sense.AsSpan(0, SenseLength);

    /// <summary>Bytes of Data-In actually produced; -1 when the whole buffer is valid.</summary>
    public long DataInLength { get; private set; } = -1;

    /// <summary>
    /// Set by a transport that can finish a command after <see cref="CommandSet.Execute"/> has
    /// returned, on another thread (the TCMU event loop): a READ or WRITE on a store that
    /// completes on its own thread then ends there (docs/architecture.md §2). Null: every command
    /// is finished when Execute returns.
    /// </summary>
    public ICommandCompletion? Completion { get; set; }

    /// <summary>When the transport handed the command over (<see cref="System.Diagnostics.Stopwatch"/>
    /// ticks; 0: not given), for the path's latency histogram.</summary>
    public long ReceivedTimestamp { get; set; }

    /// <summary>The store transfer a handler left for <see cref="CommandSet"/> to start without a thread.</summary>
    internal StoreTransfer Deferred;

    /// <summary>Made the first time this pooled command goes through a store without a thread,
    /// then kept with it: nothing is allocated per command.</summary>
    internal AsyncTransfer? Async;

    public void SetCdb(ReadOnlySpan<byte> cdb)
    {
        if (cdb.Length > MaxCdbLength) throw new ArgumentException("CDB too long", nameof(cdb));
        cdb.CopyTo(_cdb);
        CdbLength = cdb.Length;
    }

    /// <summary>Prepares a pooled instance for the next command.</summary>
    public void Reset()
    {
        CdbLength = 0;
        Data = DataBuffer.Empty;
        Status = ScsiStatus.Good;
        SenseLength = 0;
        DataInLength = -1;
        TransportTag = 0;
        Completion = null;
        ReceivedTimestamp = 0;
        Deferred = default;
    }

    public void Good(long dataInLength = -1)
    {
        Status = ScsiStatus.Good;
        SenseLength = 0;
        DataInLength = dataInLength;
    }

    public void CheckCondition(SenseCode code, FieldPointer? field = null, ulong? information = null)
    {
        Status = ScsiStatus.CheckCondition;
        SenseLength = SenseData.Write(_sense, code, DescriptorSense, field, information);
        DataInLength = 0;
    }

    public void Complete(ScsiStatus status)
    {
        Status = status;
        SenseLength = 0;
        DataInLength = 0;
    }

    public void ReservationConflict() => Complete(ScsiStatus.ReservationConflict);
}

/// <summary>What finishes a command that completes after <see cref="CommandSet.Execute"/> returned
/// (<see cref="ScsiCommand.Completion"/>): for TCMU, the response into the ring and the kick.</summary>
public interface ICommandCompletion
{
    /// <summary>Any thread (the store's); the command's status and sense are set. The command
    /// belongs to the transport again: nothing may touch it afterwards.</summary>
    void Finished(ScsiCommand command);
}
