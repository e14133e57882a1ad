using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Scsi.OperationCode;

namespace TcmuSharedVolume.Scsi;

/// <summary>What the table says about a command besides its handler, CDB usage and class.</summary>
[Flags]
internal enum CommandFlags : ushort
{
    None = 0,
    /// <summary>Writes or deallocates logical blocks. Such a command must be write class.</summary>
    ChangesMedium = 1 << 0,
    /// <summary>SAM-5 5.14: a pending unit attention is not reported on this command.</summary>
    NoUnitAttention = 1 << 1,
    /// <summary>PERSISTENT RESERVE IN/OUT, RESERVE, RELEASE: run by the reservation engine, before
    /// and instead of the gate, and not counted on the path (docs/reservations.md).</summary>
    ReservationCommand = 1 << 2,
    /// <summary>Passes an SPC-2 reservation held by another nexus (SPC-2 Table B.2 column A).</summary>
    Spc2Pass = 1 << 3,
    /// <summary>Exists only on a store that deallocates (LBPU=1 in VPD B2h).</summary>
    NeedsUnmap = 1 << 4,
    /// <summary>The kernel answers it (REPORT LUNS): reported, never dispatched here.</summary>
    AnsweredByKernel = 1 << 5,
    /// <summary>Allowed class (and SPC-2 pass) when START=1 and POWER CONDITION=0, otherwise the
    /// entry's class (SPC-2 Table B.2: spinning up is harmless).</summary>
    AllowedWhenStarting = 1 << 6,
    /// <summary>Allowed class when PREVENT=0, otherwise the entry's class.</summary>
    AllowedWhenNotPreventing = 1 << 7,
    /// <summary>Exists only where a block can be compared and written atomically for every
    /// writer of the store (VPD B0h MAXIMUM COMPARE AND WRITE LENGTH above 0).</summary>
    NeedsAtomicCompareAndWrite = 1 << 8,
    /// <summary>SPC-2 RESERVE/RELEASE: exist only on a table of this host alone
    /// (docs/reservations.md §18).</summary>
    NeedsLocalTable = 1 << 9,
}

/// <summary>One operation code, or one service action of it.</summary>
internal readonly unsafe struct Command
{
    /// <summary>The CDB as the handler sees it: checked for length and NACA.</summary>
    public readonly delegate*<VolumePath, ScsiCommand, CdbReader, void> Handler;
    public readonly string Name;
    /// <summary>CDB USAGE DATA (SPC-4 6.35.3): byte 0 is the opcode, then the bits the device
    /// server examines; its length is the CDB length. Null: not reported by REPORT SUPPORTED
    /// OPERATION CODES (the gate-only entries).</summary>
    public readonly byte[]? Usage;
    public readonly int ServiceAction;
    public readonly ushort RecommendedTimeout;
    public readonly byte Op;
    public readonly AccessClass Access;
    public readonly CommandFlags Flags;

    public Command(byte op, int serviceAction, string name, delegate*<VolumePath, ScsiCommand, CdbReader, void> handler,
        byte[]? usage, ushort timeout, AccessClass access, CommandFlags flags)
    {
        Op = op;
        ServiceAction = serviceAction;
        Name = name;
        Handler = handler;
        Usage = usage;
        RecommendedTimeout = timeout;
        Access = access;
        Flags = flags;
    }

    public bool HasServiceAction => ServiceAction >= 0;
    public bool IsReported => Usage is not null;
    public bool IsImplemented => Handler != null;
    public int CdbLength => Usage?.Length ?? 0;
    public bool Has(CommandFlags f) => (Flags & f) != 0;
    public override string ToString() => HasServiceAction ? $"{Op:X2}h/{ServiceAction:X2}h {Name}" : $"{Op:X2}h {Name}";
}

/// <summary>
/// Every command this logical unit knows, in one place: handler, CDB usage data and length,
/// recommended timeout, reservation access class, whether it changes the medium. Dispatch
/// (<see cref="Run"/>), REPORT SUPPORTED OPERATION CODES (<see cref="SupportedOperationCodes"/>)
/// and the reservation gate's classification (<see cref="ReservationAccess"/>) are derived from
/// <see cref="Entries"/> once, into arrays indexed by opcode. Adding a command is adding a row.
/// </summary>
/// <remarks>
/// Rows without a handler are gate-only: commands this target does not implement but whose
/// reservation class SPC-4/SBC-3 fix, so that a fenced node gets RESERVATION CONFLICT before
/// INVALID COMMAND OPERATION CODE (docs/reservations.md §11). An opcode in no row is write class.
/// </remarks>
internal static unsafe class CommandTable
{
    public const int NoServiceAction = -1;
    /// <summary>A gate-only row for the service actions of an opcode that no other row names.</summary>
    public const int OtherServiceActions = -2;
    /// <summary>Service actions looked up by table; larger ones (variable-length CDBs) take the
    /// <see cref="OtherServiceActions"/> row.</summary>
    public const int ServiceActionSlots = 32;

    private const ushort T = 30;     // data and control commands, seconds
    private const ushort Long = 120; // SYNCHRONIZE CACHE, UNMAP, WRITE SAME: may touch a lot of data

    // Control byte: NACA (bit 2) is the only bit examined (ACA is not supported).
    private const byte C = 0x04;
    // READ/WRITE byte 1: RDPROTECT/WRPROTECT (7:5), DPO (4), FUA (3).
    private const byte RwFlags = 0xF8;

    private const AccessClass Allowed = AccessClass.Allowed;
    private const AccessClass Read = AccessClass.Read;
    private const AccessClass Meta = AccessClass.MetadataRead;
    private const AccessClass Write = AccessClass.Write;

    private const CommandFlags NoUa = CommandFlags.NoUnitAttention;
    private const CommandFlags Medium = CommandFlags.ChangesMedium;
    private const CommandFlags Spc2 = CommandFlags.Spc2Pass;
    private const CommandFlags Pr = CommandFlags.ReservationCommand;

    public static readonly Command[] Entries =
    [
        // ---- SPC-4 primary commands
        Cmd(TestUnitReady, "TEST UNIT READY", &PrimaryCommands.TestUnitReady, [TestUnitReady, 0, 0, 0, 0, C], Allowed),
        Cmd(RequestSense, "REQUEST SENSE", &PrimaryCommands.RequestSense, [RequestSense, 0x01, 0, 0, 0xFF, C], Allowed, NoUa | Spc2),
        Cmd(Inquiry, "INQUIRY", &PrimaryCommands.Inquiry, [Inquiry, 0x03, 0xFF, 0xFF, 0xFF, C], Allowed, NoUa | Spc2),
        Cmd(ModeSelect6, "MODE SELECT(6)", &PrimaryCommands.ModeSelect6, [ModeSelect6, 0x11, 0, 0, 0xFF, C], Write),
        Cmd(ModeSense6, "MODE SENSE(6)", &PrimaryCommands.ModeSense6, [ModeSense6, 0x08, 0xFF, 0xFF, 0xFF, C], Meta),
        // SBC-3 START STOP UNIT; SPC-2 Table B.2 lets a spin-up through.
        Cmd(StartStopUnit, "START STOP UNIT", &PrimaryCommands.StartStopUnit, [StartStopUnit, 0x01, 0, 0x0F, 0xF7, C], Write,
            CommandFlags.AllowedWhenStarting),
        Cmd(SendDiagnostic, "SEND DIAGNOSTIC", &PrimaryCommands.SendDiagnostic, [SendDiagnostic, 0xF7, 0, 0xFF, 0xFF, C], Write),
        Cmd(PreventAllowMediumRemoval, "PREVENT ALLOW MEDIUM REMOVAL", &PrimaryCommands.PreventAllowMediumRemoval,
            [PreventAllowMediumRemoval, 0, 0, 0, 0x03, C], Write, CommandFlags.AllowedWhenNotPreventing),
        Cmd(ModeSelect10, "MODE SELECT(10)", &PrimaryCommands.ModeSelect10, [ModeSelect10, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, C], Write),
        Cmd(ModeSense10, "MODE SENSE(10)", &PrimaryCommands.ModeSense10, [ModeSense10, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, C], Meta),
        // Answered by LIO before the ring; listed because to the initiator it is a command of this LU.
        Cmd(ReportLuns, "REPORT LUNS", null, [ReportLuns, 0, 0xFF, 0, 0, 0, .. Ff(4), 0, C], Allowed,
            NoUa | Spc2 | CommandFlags.AnsweredByKernel),
        // SPC-4 6.35
        Cmd(MaintenanceIn, ServiceActionReportSupportedOperationCodes, "REPORT SUPPORTED OPERATION CODES",
            &PrimaryCommands.ReportSupportedOperationCodes, [MaintenanceIn, 0x1F, 0x87, 0xFF, 0xFF, 0xFF, .. Ff(4), 0, C], Meta),
        // SPC-4 6.37; byte 1 bits 7-5 are the PARAMETER DATA FORMAT. No SET TARGET PORT GROUPS:
        // implicit ALUA only (TargetPortGroups.cs).
        Cmd(MaintenanceIn, ServiceActionReportTargetPortGroups, "REPORT TARGET PORT GROUPS",
            &TargetPortGroups.Report, [MaintenanceIn, 0xFF, 0, 0, 0, 0, .. Ff(4), 0, C], Allowed),

        // ---- reservations (SPC-4 6.15, 6.16; SPC-2 RESERVE/RELEASE): the engine judges them, not the gate
        .. Persistent(PersistentReserveIn, "PERSISTENT RESERVE IN", 4, [PersistentReserveIn, 0x1F, 0, 0, 0, 0, 0, 0xFF, 0xFF, C]),
        .. Persistent(PersistentReserveOut, "PERSISTENT RESERVE OUT", 8, [PersistentReserveOut, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, C]),
        Cmd(Reserve6, "RESERVE(6)", &Reservations, [Reserve6, 0, 0, 0, 0, C], Allowed, Pr | CommandFlags.NeedsLocalTable),
        Cmd(Release6, "RELEASE(6)", &Reservations, [Release6, 0, 0, 0, 0, C], Allowed, Pr | Spc2 | CommandFlags.NeedsLocalTable),
        Cmd(Reserve10, "RESERVE(10)", &Reservations, [Reserve10, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, C], Allowed, Pr | CommandFlags.NeedsLocalTable),
        Cmd(Release10, "RELEASE(10)", &Reservations, [Release10, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, C], Allowed, Pr | Spc2 | CommandFlags.NeedsLocalTable),

        // ---- SBC-3 block commands
        Cmd(Read6, "READ(6)", &BlockCommands.Read6, [Read6, 0x1F, 0xFF, 0xFF, 0xFF, C], Read),
        Cmd(Read10, "READ(10)", &BlockCommands.Read10, [Read10, RwFlags, .. Ff(4), 0, 0xFF, 0xFF, C], Read),
        Cmd(Read12, "READ(12)", &BlockCommands.Read12, [Read12, RwFlags, .. Ff(4), .. Ff(4), 0, C], Read),
        Cmd(Read16, "READ(16)", &BlockCommands.Read16, [Read16, RwFlags, .. Ff(8), .. Ff(4), 0, C], Read),
        Cmd(Write6, "WRITE(6)", &BlockCommands.Write6, [Write6, 0x1F, 0xFF, 0xFF, 0xFF, C], Write, Medium),
        Cmd(Write10, "WRITE(10)", &BlockCommands.Write10, [Write10, RwFlags, .. Ff(4), 0, 0xFF, 0xFF, C], Write, Medium),
        Cmd(Write12, "WRITE(12)", &BlockCommands.Write12, [Write12, RwFlags, .. Ff(4), .. Ff(4), 0, C], Write, Medium),
        Cmd(Write16, "WRITE(16)", &BlockCommands.Write16, [Write16, RwFlags, .. Ff(8), .. Ff(4), 0, C], Write, Medium),
        Cmd(Verify10, "VERIFY(10)", &BlockCommands.Verify10, [Verify10, 0xF6, .. Ff(4), 0, 0xFF, 0xFF, C], Read),
        Cmd(Verify12, "VERIFY(12)", &BlockCommands.Verify12, [Verify12, 0xF6, .. Ff(4), .. Ff(4), 0, C], Read),
        Cmd(Verify16, "VERIFY(16)", &BlockCommands.Verify16, [Verify16, 0xF6, .. Ff(8), .. Ff(4), 0, C], Read),
        Cmd(WriteAndVerify10, "WRITE AND VERIFY(10)", &BlockCommands.WriteAndVerify10, [WriteAndVerify10, 0xF2, .. Ff(4), 0, 0xFF, 0xFF, C], Write, Medium),
        Cmd(WriteAndVerify12, "WRITE AND VERIFY(12)", &BlockCommands.WriteAndVerify12, [WriteAndVerify12, 0xF2, .. Ff(4), .. Ff(4), 0, C], Write, Medium),
        Cmd(WriteAndVerify16, "WRITE AND VERIFY(16)", &BlockCommands.WriteAndVerify16, [WriteAndVerify16, 0xF2, .. Ff(8), .. Ff(4), 0, C], Write, Medium),
        // Write class although it changes no block: a fenced node must not flush (docs/reservations.md §11).
        Cmd(SynchronizeCache10, "SYNCHRONIZE CACHE(10)", &BlockCommands.SynchronizeCache10, [SynchronizeCache10, 0, .. Ff(4), 0, 0xFF, 0xFF, C], Write, timeout: Long),
        Cmd(SynchronizeCache16, "SYNCHRONIZE CACHE(16)", &BlockCommands.SynchronizeCache16, [SynchronizeCache16, 0, .. Ff(8), .. Ff(4), 0, C], Write, timeout: Long),
        Cmd(WriteSame10, "WRITE SAME(10)", &BlockCommands.WriteSame10, [WriteSame10, 0xFE, .. Ff(4), 0, 0xFF, 0xFF, C], Write, Medium, Long),
        Cmd(WriteSame16, "WRITE SAME(16)", &BlockCommands.WriteSame16, [WriteSame16, 0xFF, .. Ff(8), .. Ff(4), 0, C], Write, Medium, Long),
        Cmd(Unmap, "UNMAP", &BlockCommands.Unmap, [Unmap, 0x01, 0, 0, 0, 0, 0, 0xFF, 0xFF, C], Write, Medium | CommandFlags.NeedsUnmap, Long),
        Cmd(CompareAndWrite, "COMPARE AND WRITE", &BlockCommands.CompareAndWrite, [CompareAndWrite, RwFlags, .. Ff(8), 0, 0, 0, 0xFF, 0, C], Write, Medium | CommandFlags.NeedsAtomicCompareAndWrite),
        Cmd(ReadCapacity10, "READ CAPACITY(10)", &BlockCommands.ReadCapacity10, [ReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, C], Allowed, Spc2),
        Cmd(ServiceActionIn16, ServiceActionReadCapacity16, "READ CAPACITY(16)", &BlockCommands.ReadCapacity16,
            [ServiceActionIn16, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, .. Ff(4), 0, C], Allowed, Spc2),
        Cmd(ServiceActionIn16, ServiceActionGetLbaStatus, "GET LBA STATUS", &BlockCommands.GetLbaStatus,
            [ServiceActionIn16, 0x1F, .. Ff(8), .. Ff(4), 0, C], Read),
        Gate(ServiceActionIn16, OtherServiceActions, "SERVICE ACTION IN(16): REPORT REFERRALS, others", Read),

        // ---- gate-only: not implemented, but their class is fixed (docs/reservations.md §11)
        Gate(0x4D, NoServiceAction, "LOG SENSE", Allowed),
        Gate(0x86, NoServiceAction, "ACCESS CONTROL IN", Allowed),
        Gate(0x87, NoServiceAction, "ACCESS CONTROL OUT", Allowed),
        Gate(MaintenanceIn, 0x05, "REPORT IDENTIFYING INFORMATION", Allowed),
        Gate(MaintenanceIn, 0x0B, "REPORT ALIASES", Allowed),
        Gate(MaintenanceIn, 0x0E, "REPORT PRIORITY", Allowed),
        Gate(MaintenanceIn, 0x0F, "REPORT TIMESTAMP", Allowed),
        Gate(0x34, NoServiceAction, "PRE-FETCH(10)", Read),
        Gate(0x90, NoServiceAction, "PRE-FETCH(16)", Read),
        Gate(0x8C, NoServiceAction, "READ ATTRIBUTE", Read),
        Gate(VariableLength, 0x0009, "READ(32)", Read),
        Gate(VariableLength, 0x000A, "VERIFY(32)", Read),
        Gate(VariableLength, OtherServiceActions, "variable length: WRITE(32), others", Write),
        // Every command that REPORT CAPABILITIES' ALLOW COMMANDS 011b says passes a Write
        // Exclusive reservation (READ ATTRIBUTE is Read above, REPORT SUPPORTED OPERATION CODES
        // Meta above) must be in the metadata-read class or a more lenient one, or the claim is false.
        Gate(MaintenanceIn, OtherServiceActions, "MAINTENANCE IN: REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, others", Meta),
        Gate(0x3C, NoServiceAction, "READ BUFFER", Meta),
        Gate(0x1C, NoServiceAction, "RECEIVE DIAGNOSTIC RESULTS", Meta),
        Gate(0x84, NoServiceAction, "RECEIVE COPY RESULTS", Meta),
        // SBC-3's table of commands allowed in the presence of reservations lets READ DEFECT DATA
        // through Write Exclusive (SBC-2 and SPC-2 did not), and ALLOW COMMANDS 011b says so.
        Gate(0x37, NoServiceAction, "READ DEFECT DATA(10)", Meta),
        Gate(0xB7, NoServiceAction, "READ DEFECT DATA(12)", Meta),
        Gate(0xA2, NoServiceAction, "SECURITY PROTOCOL IN", Meta),
        // Write class needs no row: FORMAT UNIT, SANITIZE, LOG SELECT, WRITE BUFFER, ORWRITE,
        // XDWRITE, EXTENDED COPY, SECURITY PROTOCOL OUT, MAINTENANCE OUT and every unknown or
        // vendor opcode are write class, since refusing an unknown command to a fenced node is
        // the only safe answer.
    ];

    /// <summary>The rows REPORT SUPPORTED OPERATION CODES lists, by opcode and service action.</summary>
    public static readonly Command[] Reported =
        [.. Entries.Where(e => e.IsReported).OrderBy(e => e.Op).ThenBy(e => e.ServiceAction)];

    private static Command Cmd(byte op, string name, delegate*<VolumePath, ScsiCommand, CdbReader, void> handler, byte[] usage,
        AccessClass access, CommandFlags flags = CommandFlags.None, ushort timeout = T) =>
        new(op, NoServiceAction, name, handler, usage, timeout, access, flags);

    private static Command Cmd(byte op, int serviceAction, string name, delegate*<VolumePath, ScsiCommand, CdbReader, void> handler,
        byte[] usage, AccessClass access, CommandFlags flags = CommandFlags.None, ushort timeout = T) =>
        new(op, serviceAction, name, handler, usage, timeout, access, flags);

    private static Command Gate(byte op, int serviceAction, string name, AccessClass access) =>
        new(op, serviceAction, name, null, null, 0, access, CommandFlags.None);

    private static Command[] Persistent(byte op, string name, int serviceActions, byte[] usage)
    {
        var rows = new Command[serviceActions];
        for (int sa = 0; sa < serviceActions; sa++)
            rows[sa] = new(op, sa, name, &Reservations, usage, T, Allowed, Pr);
        return rows;
    }

    private static byte[] Ff(int n)
    {
        var a = new byte[n];
        Array.Fill(a, (byte)0xFF);
        return a;
    }

    /// <summary>The reservation commands' handler is the engine's.</summary>
    private static void Reservations(VolumePath path, ScsiCommand command, CdbReader cdb) =>
        path.Volume.Reservations.Execute(path.Nexus, command);

    /// <summary>SPC-4 4.2.5.2: byte 1 bits 4-0, or bytes 8-9 of a variable-length CDB; 0 when
    /// the CDB is too short to hold it.</summary>
    public static int ServiceActionOf(ReadOnlySpan<byte> cdb) =>
        cdb[0] == VariableLength ? (cdb.Length > 9 ? (cdb[8] << 8) | cdb[9] : 0) : (cdb.Length > 1 ? cdb[1] & 0x1F : 0);

    // ------------------------------------------------------------------ dispatch, derived

    /// <summary>One opcode's dispatch: a handler, or (<see cref="Handler"/> null, <see cref="CdbLength"/>
    /// not 0) a service action slot in <see cref="ByServiceAction"/>.</summary>
    internal readonly struct Route(delegate*<VolumePath, ScsiCommand, CdbReader, void> handler, byte cdbLength, byte slot, CommandFlags flags)
    {
        public readonly delegate*<VolumePath, ScsiCommand, CdbReader, void> Handler = handler;
        /// <summary>0: not implemented here (INVALID COMMAND OPERATION CODE).</summary>
        public readonly byte CdbLength = cdbLength;
        public readonly byte Slot = slot;
        /// <summary>The flags every row of the opcode shares.</summary>
        public readonly CommandFlags Flags = flags;
    }

    private static readonly Route[] Routes;
    private static readonly delegate*<VolumePath, ScsiCommand, CdbReader, void>[] ByServiceAction;

    static CommandTable()
    {
        Routes = new Route[256];
        var bySa = new List<nint>();
        for (int op = 0; op < 256; op++)
        {
            var rows = Array.FindAll(Entries, e => e.Op == op && e.IsImplemented);
            var all = Array.FindAll(Entries, e => e.Op == op);
            if (all.Length == 0) continue;
            var shared = all[0].Flags;
            foreach (var e in all) shared &= e.Flags;
            shared &= CommandFlags.NoUnitAttention | CommandFlags.ReservationCommand;
            if (rows.Length == 0)
            {
                Routes[op] = new Route(null, 0, 0, shared);
                continue;
            }
            byte length = (byte)rows[0].CdbLength;
            if (Array.Exists(rows, e => e.CdbLength != length))
                throw new InvalidOperationException($"opcode {op:X2}h: rows of different CDB lengths");
            if ((shared & CommandFlags.ReservationCommand) != 0 || !rows[0].HasServiceAction)
            {
                // One handler for the opcode; the engine checks its own service actions.
                if (rows.Length > 1 && (shared & CommandFlags.ReservationCommand) == 0)
                    throw new InvalidOperationException($"opcode {op:X2}h: several rows without service actions");
                Routes[op] = new Route(rows[0].Handler, length, 0, shared);
                continue;
            }
            int slot = bySa.Count / ServiceActionSlots;
            bySa.AddRange(new nint[ServiceActionSlots]);
            foreach (var e in rows)
                bySa[slot * ServiceActionSlots + e.ServiceAction] = (nint)e.Handler;
            Routes[op] = new Route(null, length, (byte)slot, shared);
        }
        ByServiceAction = new delegate*<VolumePath, ScsiCommand, CdbReader, void>[bySa.Count];
        for (int i = 0; i < bySa.Count; i++)
            ByServiceAction[i] = (delegate*<VolumePath, ScsiCommand, CdbReader, void>)bySa[i];
    }

    internal static ref readonly Route RouteOf(byte op) => ref Routes[op];

    /// <summary>Runs the command's handler: the CDB checked for length and NACA first, except for
    /// the reservation engine, which checks its own; INVALID COMMAND OPERATION CODE for an opcode
    /// not implemented, INVALID FIELD IN CDB for a service action not implemented.</summary>
    internal static void Run(in Route route, VolumePath path, ScsiCommand command)
    {
        if (route.CdbLength == 0)
        {
            command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
            return;
        }
        if ((route.Flags & CommandFlags.ReservationCommand) == 0 && !PrimaryCommands.CheckCdb(command, route.CdbLength))
            return;
        var cdb = new CdbReader(command.Cdb);
        var handler = HandlerOf(route, cdb[1] & 0x1F);
        if (handler == null)
        {
            PrimaryCommands.Invalid(command, 1, 4); // a service action not implemented
            return;
        }
        handler(path, command, cdb);
    }

    private static delegate*<VolumePath, ScsiCommand, CdbReader, void> HandlerOf(in Route route, int serviceAction) =>
        route.Handler != null || route.CdbLength == 0 ? route.Handler : ByServiceAction[route.Slot * ServiceActionSlots + serviceAction];

    /// <summary>Tests: the address of the handler a CDB with this opcode and service action
    /// (byte 1 bits 4-0) reaches; 0 when none.</summary>
    internal static nint HandlerAddressOf(byte op, int serviceAction) => (nint)HandlerOf(Routes[op], serviceAction & 0x1F);

    public static bool IsReservationCommand(byte op) => (Routes[op].Flags & CommandFlags.ReservationCommand) != 0;
}
