using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    // sd-bus-vtable.h: entry types (the low 8 bits of the first word).
    public const byte SD_BUS_VTABLE_START = (byte)'<';
    public const byte SD_BUS_VTABLE_END = (byte)'>';
    public const byte SD_BUS_VTABLE_METHOD = (byte)'M';
    public const byte SD_BUS_VTABLE_SIGNAL = (byte)'S';
    public const byte SD_BUS_VTABLE_PROPERTY = (byte)'P';

    // Entry flags (the upper 56 bits of the first word).
    public const ulong SD_BUS_VTABLE_DEPRECATED = 1UL << 0;
    public const ulong SD_BUS_VTABLE_HIDDEN = 1UL << 1;
    /// <summary>Without it sd-bus itself refuses the call unless the sender has CAP_SYS_ADMIN (or our uid).</summary>
    public const ulong SD_BUS_VTABLE_UNPRIVILEGED = 1UL << 2;
    public const ulong SD_BUS_VTABLE_METHOD_NO_REPLY = 1UL << 3;
    public const ulong SD_BUS_VTABLE_PROPERTY_CONST = 1UL << 4;

    /// <summary>start.features: method entries carry parameter names (SD_BUS_METHOD_WITH_NAMES).</summary>
    public const ulong SD_BUS_VTABLE_PARAM_NAMES = 1UL << 0;

    // sd_bus_request_name flags.
    public const ulong SD_BUS_NAME_REPLACE_EXISTING = 1UL << 0;
    public const ulong SD_BUS_NAME_ALLOW_REPLACEMENT = 1UL << 1;
    public const ulong SD_BUS_NAME_QUEUE = 1UL << 2;

    // D-Bus basic type codes for *_basic.
    public const byte SD_BUS_TYPE_BOOLEAN = (byte)'b';
    public const byte SD_BUS_TYPE_INT32 = (byte)'i';
    public const byte SD_BUS_TYPE_UINT64 = (byte)'t';
    public const byte SD_BUS_TYPE_STRING = (byte)'s';

    private static nint s_vtableFormat;

    /// <summary>
    /// Address of libsystemd's exported <c>sd_bus_object_vtable_format</c> (value 242 since
    /// systemd 242). sd-bus recognises the current vtable layout only when the START entry
    /// points at this very symbol; any other pointer makes it treat the table as the old 221
    /// layout or reject it with EINVAL.
    /// </summary>
    public static nint VtableFormatReference
    {
        get
        {
            if (s_vtableFormat == 0)
                s_vtableFormat = NativeLibrary.GetExport(NativeLibrary.Load(Library), "sd_bus_object_vtable_format");
            return s_vtableFormat;
        }
    }
}

/// <summary>
/// struct sd_bus_vtable of libsystemd ≥ 242 on LP64: a 64-bit word holding the bit fields
/// <c>uint8_t type:8; uint64_t flags:56</c> (GCC allocates them from the least significant bit,
/// so word = type | flags &lt;&lt; 8), then a union whose largest member (method) is six pointers.
/// 56 bytes in all; START's element_size must equal that.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 56)]
public unsafe struct SdBusVtable
{
    [FieldOffset(0)] public ulong TypeAndFlags;

    // union x.start
    [FieldOffset(8)] public nuint StartElementSize;
    [FieldOffset(16)] public ulong StartFeatures;
    [FieldOffset(24)] public nint StartVtableFormatReference;

    // union x.method / x.property share member and signature.
    [FieldOffset(8)] public byte* Member;
    [FieldOffset(16)] public byte* Signature;

    // x.method
    [FieldOffset(24)] public byte* MethodResult;
    /// <summary>int (*)(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)</summary>
    [FieldOffset(32)] public delegate* unmanaged<nint, nint, SdBusError*, int> MethodHandler;
    [FieldOffset(40)] public nuint MethodOffset;
    /// <summary>NUL-separated input then output parameter names, ending with an empty name.</summary>
    [FieldOffset(48)] public byte* MethodNames;

    // x.property
    /// <summary>int (*)(sd_bus *bus, const char *path, const char *interface, const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)</summary>
    [FieldOffset(24)] public delegate* unmanaged<nint, byte*, byte*, byte*, nint, nint, SdBusError*, int> PropertyGet;
    [FieldOffset(32)] public nint PropertySet;
    [FieldOffset(40)] public nuint PropertyOffset;

    public static ulong Word(byte type, ulong flags) => type | (flags << 8);
}

/// <summary>sd_bus_error: name, message, _need_free (24 bytes on LP64).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct SdBusError
{
    public byte* Name;
    public byte* Message;
    public int NeedFree;
}
