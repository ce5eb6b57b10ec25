/* test_ops_resample.c - adaptive_avg_pool2d and upsample against hand-computed
 * values, against PyTorch (values and gradients embedded below, printed by
 * scripts/torch_ref_resample.py), against central differences over the
 * registry's sample cases, and every error path. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

/* ------------------------------------------------ PyTorch's values */
/* adaptive_5x7_to_3x4: x [1, 2, 5, 7] -> y [1, 2, 3, 4] */
static const double ADAPTIVE_5X7_TO_3X4_x[70] = {
    0.16787899288192509, -0.17393208634630475, 0.40769486372337616, -0.059546257488570342,
    -0.48244256789338302, -0.98261229229823599, 1.0890774527915221, 1.0395274602696047,
    -0.65557545803165218, -1.1096482065800508, 0.52147226564929516, 1.3124273979571406,
    0.43306012105045966, -1.411436817995622, 0.34882338375048327, -1.1109119017030142,
    1.1338482074685521, -0.14029313373320118, 1.3618687056323266, 1.2260026586920398,
    0.84868685504713159, 0.023095855241903607, 0.26512355729228432, 0.32102954860446031,
    -0.97678251126307269, 0.14793362130792942, 1.3737189068159772, 0.10837878953734092,
    0.75567157525767437, 0.25503182945568126, 0.53010604306906917, 0.59726575871151066,
    1.3899808095426001, 0.57869612968098849, -1.2799789188308082, 0.48976862159000678,
    -0.26523871886183992, -0.44287249091054592, 1.4315500022057153, 1.1137442415900045,
    -1.1069495346529041, 1.3028781158813389, -1.4171042024993656, 0.64443403224624118,
    -1.4936614091735536, 0.15552904153957137, 0.38741359997989688, 0.7738060873169168,
    0.98726510112869414, 0.46344527788079803, -0.82615444598414944, -1.3830564703794801,
    -0.55753151738008533, -0.36274409324464152, -0.9932960792219383, -1.1080066958261496,
    -0.33341945460842881, 0.75558201076655962, -1.0875710527674363, -0.79203305151544057,
    0.57713889964078824, 1.3554507560027611, 0.16065898356439323, -0.34118470810876977,
    -0.086527926631130736, -0.31120649567729153, 1.397084841581457, 0.72049082237952122,
    0.11979905585314388, 0.52361339763701364};
static const double ADAPTIVE_5X7_TO_3X4_g[24] = {
    1.4533713671573678, 1.0216521629366389, 1.0645120467803963, 0.80635911983117436,
    1.3690367743881078, 0.82463205816763663, 0.69902288194107909, 0.53543172751406043,
    0.62574881881968736, 1.4189272206262924, 0.50398019264360039, 0.67445936734436207,
    0.85596624000990518, 1.4035737035688629, 0.52353586017800491, 0.88608282653388826,
    1.1669897237605058, 0.54827066859118634, 0.77839529350652481, 0.83760166864279406,
    1.3942637202771988, 1.3630103629071657, 0.92741636093522362, 0.75879980758373577};
static const double ADAPTIVE_5X7_TO_3X4_y[24] = {
    0.094474727193393226, -0.17825581317898445, 0.12372644449611769, -0.21797788411296906,
    -0.014986183863398414, -0.19463751469959989, 0.58437867023432166, 0.42973508552455453,
    0.32473070431188589, 0.16529570431165549, 0.51846878579932221, 0.19520372680087461,
    -0.1370350668812394, 0.0049567428409313941, 0.45918223966320015, 0.48924994241851144,
    -0.11886946369972418, -0.50938476251641929, 0.060414849235314309, 0.19597969216077957,
    -0.0013875196454424255, -0.020778612373880418, 0.56298855399037184, 0.53988054826432796};
static const double ADAPTIVE_5X7_TO_3X4_dx[70] = {
    0.36334284178934195, 0.53361820227878176, 0.17027536048943981, 0.34769403495283924,
    0.1774186744633994, 0.37900845442119302, 0.20158977995779359, 0.59151563752069325,
    0.85341678225098161, 0.2619011447302883, 0.51698902829825211, 0.25508788356796375,
    0.54591628477810072, 0.29082840121013698, 0.2281727957313513, 0.31979857997219979,
    0.09162578424084851, 0.16929499334541287, 0.077669209104564346, 0.16690783035690776,
    0.0892386212523434, 0.38461000043627314, 0.71272365478150368, 0.3281136543452306,
    0.48977956222372837, 0.16166590787849774, 0.4195193709669317, 0.25785346308843393,
    0.15643720470492184, 0.39292507480930394, 0.23648787010438208, 0.32048456887831545,
    0.083996698773933398, 0.25261154061002389, 0.16861484183609052, 0.21399156000247629,
    0.44792051059728677, 0.23392895059481048, 0.32118492729114462, 0.087255976696334156,
    0.30877668332980623, 0.22152070663347206, 0.40848984729589394, 0.7033377610675029,
    0.29484791377160896, 0.46859225641311253, 0.17374434264150357, 0.53486532738210801,
    0.36112098474060439, 0.19449828729341764, 0.25541725047021613, 0.060918963176798485,
    0.14740732912196791, 0.086488365945169413, 0.22608864405230178, 0.13960027810713235,
    0.54306421736271737, 0.83115157435737674, 0.28808735699465943, 0.52914511642903284,
    0.24105775943437335, 0.57035798943743965, 0.3293002300030663, 0.3485659300692997,
    0.57573432388716062, 0.22716839381786094, 0.38173778730706487, 0.15456939348920393,
    0.34426934538513787, 0.18969995189593394};
/* adaptive_4x3_to_6x2: x [1, 1, 4, 3] -> y [1, 1, 6, 2] */
static const double ADAPTIVE_4X3_TO_6X2_x[12] = {
    -0.31929207990025699, -0.7304706914830108, 0.17518110828273592, 0.55620975608157774,
    -0.15526974758098122, 0.67675344278468064, -0.66711664534273263, -0.60526792046525735,
    -0.60492854423307219, 0.39611339147683422, 1.1653106107853639, 1.1042232764085691};
static const double ADAPTIVE_4X3_TO_6X2_g[12] = {
    0.60057249478582053, 0.76964631568638275, 0.96404398602487218, 0.95147425880867742,
    1.1129075078990296, 1.3385840831115376, 1.2927811573286832, 0.51898140217653654,
    0.6660767081846537, 1.0050305338234349, 0.58109506074501427, 0.72757667669949677};
static const double ADAPTIVE_4X3_TO_6X2_y[12] = {
    -0.52488138569163389, -0.27764479160013744, -0.16220569072066782, -0.0084514719991438669,
    0.20047000425029826, 0.26074184760184971, -0.63619228290399499, -0.60509823234916471,
    0.072259859113552039, 0.2648343556239009, 0.78071200113109906, 1.1347669435969665};
static const double ADAPTIVE_4X3_TO_6X2_dx[12] = {
    0.54129724389912837, 1.1639889664444891, 0.62269172254536076, 0.79746475045573284,
    1.7046253567136709, 0.90716060625793815, 0.81290975571050494, 1.323658090254632,
    0.51074833454412705, 0.45706670741867056, 1.0721126792242777, 0.61504597180560716};
/* nearest_scale_1p7_2p5: x [1, 2, 3, 4] -> y [1, 2, 5, 10] */
static const double NEAREST_SCALE_1P7_2P5_x[24] = {
    1.2999931401016185, 0.79429883958503567, -1.0437311233756537, -0.12629877240684695,
    -0.6718548010929245, -0.83986018528528594, 1.0155695440765693, 0.046298361670057853,
    -0.94982705665317257, 0.96801379393399323, 0.16843844818121956, 0.52093708132209127,
    1.0414459413897155, 0.43848356892420526, 0.16431643246303618, -0.11931547720010038,
    -1.2715063721154847, -0.059642235532370691, -0.99083910657561025, 0.89136826928137047,
    -1.1083866671542895, 0.91937103253237451, 0.62686145120426318, -1.0137693470773801};
static const double NEAREST_SCALE_1P7_2P5_g[100] = {
    1.2739385999684163, 1.4748760930189382, 0.96494115787587742, 0.5159331922884397,
    0.67528085484032374, 0.66910208981772079, 0.56292067171620397, 1.3994230286657123,
    1.429538260058298, 1.4985171599784233, 1.0980083342473899, 0.52910286209166835,
    0.73913468028875184, 1.0877423488179936, 0.88681623442194801, 0.72623276343236209,
    1.4776118919104584, 1.1021517680164852, 1.1546208667557261, 1.2937899724199342,
    1.1917256789538033, 1.2254286261331204, 1.0965159649809229, 0.54898229068930338,
    0.64803108622439198, 1.0750580941315033, 0.8776281083074422, 0.84949564365583263,
    0.55392879164207065, 1.4921270047603064, 0.86952644530825729, 0.92944162582948031,
    0.73547913026054568, 1.1713903154316014, 1.4128365775705247, 1.3839419449257271,
    0.90968186234788861, 1.2823388249341079, 1.3680362672880775, 1.0683557058535389,
    1.0671478707560953, 1.4986204234851146, 1.4281813746257299, 1.2830506736865557,
    1.1064494248100374, 0.95114954136958119, 0.7368157096539889, 1.1219906150260972,
    1.006092414424907, 0.63906547702397032, 1.2277407380876717, 0.78236000304369147,
    1.2830886740545537, 1.1355851227161016, 1.3359644032057634, 0.673320942141029,
    0.96890227874072787, 1.2554550065167107, 0.88128339158339775, 0.65468911738171243,
    0.72993381294417325, 0.51538968889705294, 1.2154462117258871, 1.4787256431305689,
    0.70093958591323824, 0.91933076577180206, 0.61911750790107356, 0.65001676845694301,
    1.4294283917250366, 1.077584569371115, 1.2073743593706032, 1.1784112529968913,
    1.1784977150705505, 0.78168730976895151, 1.2330160178112397, 0.89966663798340729,
    1.2655711271193044, 1.2201680947666036, 0.507152764770613, 0.97954423832388959,
    0.51781879097588557, 1.446524115785627, 0.54087240512113455, 1.1177262345732486,
    0.93672600625387947, 0.88464885777996383, 0.99079802787756088, 0.93267636853913738,
    1.0470230886301315, 1.2139110468610452, 0.8023095665910327, 1.0463099919914249,
    1.29063470287314, 0.50619431600218268, 1.2564884529195972, 0.67259408876430049,
    1.0132302532847905, 1.4311557814763045, 1.1543595474335244, 1.0378334211514928};
static const double NEAREST_SCALE_1P7_2P5_y[100] = {
    1.2999931401016185, 1.2999931401016185, 1.2999931401016185, 0.79429883958503567,
    0.79429883958503567, -1.0437311233756537, -1.0437311233756537, -1.0437311233756537,
    -0.12629877240684695, -0.12629877240684695, 1.2999931401016185, 1.2999931401016185,
    1.2999931401016185, 0.79429883958503567, 0.79429883958503567, -1.0437311233756537,
    -1.0437311233756537, -1.0437311233756537, -0.12629877240684695, -0.12629877240684695,
    -0.6718548010929245, -0.6718548010929245, -0.6718548010929245, -0.83986018528528594,
    -0.83986018528528594, 1.0155695440765693, 1.0155695440765693, 1.0155695440765693,
    0.046298361670057853, 0.046298361670057853, -0.6718548010929245, -0.6718548010929245,
    -0.6718548010929245, -0.83986018528528594, -0.83986018528528594, 1.0155695440765693,
    1.0155695440765693, 1.0155695440765693, 0.046298361670057853, 0.046298361670057853,
    -0.94982705665317257, -0.94982705665317257, -0.94982705665317257, 0.96801379393399323,
    0.96801379393399323, 0.16843844818121956, 0.16843844818121956, 0.16843844818121956,
    0.52093708132209127, 0.52093708132209127, 1.0414459413897155, 1.0414459413897155,
    1.0414459413897155, 0.43848356892420526, 0.43848356892420526, 0.16431643246303618,
    0.16431643246303618, 0.16431643246303618, -0.11931547720010038, -0.11931547720010038,
    1.0414459413897155, 1.0414459413897155, 1.0414459413897155, 0.43848356892420526,
    0.43848356892420526, 0.16431643246303618, 0.16431643246303618, 0.16431643246303618,
    -0.11931547720010038, -0.11931547720010038, -1.2715063721154847, -1.2715063721154847,
    -1.2715063721154847, -0.059642235532370691, -0.059642235532370691, -0.99083910657561025,
    -0.99083910657561025, -0.99083910657561025, 0.89136826928137047, 0.89136826928137047,
    -1.2715063721154847, -1.2715063721154847, -1.2715063721154847, -0.059642235532370691,
    -0.059642235532370691, -0.99083910657561025, -0.99083910657561025, -0.99083910657561025,
    0.89136826928137047, 0.89136826928137047, -1.1083866671542895, -1.1083866671542895,
    -1.1083866671542895, 0.91937103253237451, 0.91937103253237451, 0.62686145120426318,
    0.62686145120426318, 0.62686145120426318, -1.0137693470773801, -1.0137693470773801};
static const double NEAREST_SCALE_1P7_2P5_dx[24] = {
    6.0800017274910418, 3.1657726303687053, 5.9374422135589429, 5.376466259212382,
    6.0481174714661297, 3.7812402699158216, 6.3781444783025023, 4.4824477695439935,
    3.9939496688669398, 2.3895000984965931, 2.8099558660496671, 1.6451578914488774,
    5.7539591287530296, 4.6512147549656717, 5.0861432695282867, 4.0429854700612617,
    6.0694986393206927, 4.0691555684073197, 6.1935291140659769, 3.7476311385856791,
    3.1392542614555978, 1.7626827689217799, 3.1169801235253956, 2.192192968585017};
/* nearest_size_5x3: x [1, 1, 4, 7] -> y [1, 1, 5, 3] */
static const double NEAREST_SIZE_5X3_x[28] = {
    0.06437101055110972, -1.165957198201852, -1.0451001622118659, 1.1140581844014217,
    1.2188631124449287, -0.46719735129637474, -0.86749738693242473, 0.71230337268116717,
    1.3584279117560092, 0.44587716411658107, 1.3608323395037401, 0.4477874928534249,
    0.56933635971291352, -0.28748154422563887, 0.30186862800604608, 0.26860492535312308,
    1.0752232216201638, -0.20325532709707872, 0.93143694903821128, 0.9616937254901492,
    -0.21768147630936152, 0.65157933742237617, 0.41968267113868807, 1.3941374020110464,
    -0.81304351897330807, -1.1634669724180904, 0.13860460567611943, 0.1106121521654857};
static const double NEAREST_SIZE_5X3_g[15] = {
    0.55221739635570843, 0.72780472514259931, 0.78756904370980951, 0.51153665650855407,
    1.055949602785385, 1.1825236782111537, 0.96904259021263328, 1.1060261800703959,
    0.85440803708561919, 0.95997218373747406, 0.68175087182913752, 0.62818707364494708,
    0.50876713866991119, 1.3760935684089328, 0.6102038500514857};
static const double NEAREST_SIZE_5X3_y[15] = {
    0.06437101055110972, -1.0451001622118659, 1.2188631124449287, 0.06437101055110972,
    -1.0451001622118659, 1.2188631124449287, 0.71230337268116717, 0.44587716411658107,
    0.4477874928534249, 0.30186862800604608, 1.0752232216201638, 0.93143694903821128,
    0.65157933742237617, 1.3941374020110464, -1.1634669724180904};
static const double NEAREST_SIZE_5X3_dx[28] = {
    1.0637540528642626, 0, 1.7837543279279844, 0,
    1.9700927219209632, 0, 0, 0.96904259021263328,
    0, 1.1060261800703959, 0, 0.85440803708561919,
    0, 0, 0.95997218373747406, 0,
    0.68175087182913752, 0, 0.62818707364494708, 0,
    0, 0.50876713866991119, 0, 1.3760935684089328,
    0, 0.6102038500514857, 0, 0};
/* bilinear_scale_1p5_2: x [1, 1, 3, 4] -> y [1, 1, 4, 8] */
static const double BILINEAR_SCALE_1P5_2_x[12] = {
    -0.21833653135938658, 0.04745706950700157, 1.2748491295870066, 1.1498434091824681,
    0.41120518042773035, -0.55869274284842474, -0.13639205057092862, -0.93560774947403869,
    0.074840425298192681, -1.1213365683663046, -1.1749216504765476, 1.4034390349457149};
static const double BILINEAR_SCALE_1P5_2_g[32] = {
    1.1056145050069652, 1.1787791493104844, 1.3727961345884285, 1.3009321694049478,
    1.3487425512049314, 1.0529616991824577, 0.98752896906369214, 0.89952380395265774,
    0.70662198064800352, 1.2936639527954106, 0.88816330838981716, 0.96932485127915002,
    1.494315506734992, 1.3793660322249577, 1.2408057372894401, 1.2368454536346467,
    1.429452195936781, 0.89603370829642925, 0.71027359687505309, 1.3545255563448562,
    0.68252538700771859, 1.0194840517067507, 0.94161568075996183, 0.59457793570461848,
    1.1198895119233874, 1.0241419666560385, 1.397033519176573, 1.1528349568302338,
    1.3549889852650099, 1.475494248051358, 1.0354325755415601, 1.3876551184576127};
static const double BILINEAR_SCALE_1P5_2_y[32] = {
    -0.21833653135938658, -0.15188813114278954, -0.018991330709595466, 0.35430508452700282,
    0.96800111456700533, 1.243597699485872, 1.1810948392836027, 1.1498434091824681,
    0.096434324534171861, 0.0084212842329509999, -0.16760479636949069, -0.049406242626023916,
    0.36301694546335134, 0.45370086209458294, 0.22264550726767082, 0.10711782985421477,
    0.35514438790614078, 0.10324161248758779, -0.40056393834951826, -0.56672011463151972,
    -0.39522691635841656, -0.36855189260075211, -0.48669504335852631, -0.54576661873741339,
    0.13090121781978231, -0.15871473599682773, -0.73794664363004792, -1.0211302940413962,
    -1.0082656872308728, -0.49797556181693609, 0.50974008220041411, 1.0135979042090892};
static const double BILINEAR_SCALE_1P5_2_dx[12] = {
    3.2823532868079437, 3.6822321454410494, 3.7272903730887572, 3.1595565878750245,
    3.22153601093749, 3.0822854570988656, 3.3410037756211399, 2.9747134086844849,
    2.2442196183209435, 2.4131932689446334, 2.5333648214521958, 2.3701960449723978};
/* bilinear_align_size_4x6: x [1, 1, 3, 4] -> y [1, 1, 4, 6] */
static const double BILINEAR_ALIGN_SIZE_4X6_x[12] = {
    -1.3747220677335625, 0.55809615963856984, 0.76680275477646198, 0.49038449517840199,
    1.4785765157721888, 0.97667210560966122, 1.3920678290877175, -0.41357283472018747,
    0.20071114573429361, -1.3343792415949971, 0.052583575528457605, -0.39767466094550885};
static const double BILINEAR_ALIGN_SIZE_4X6_g[24] = {
    0.77423205883076285, 1.2925477819471101, 1.2562953037414597, 0.67609165685497963,
    0.73920460055315851, 0.78301980995554177, 1.2218241061814523, 0.84912901694706255,
    1.3315556811426557, 1.0130089442473444, 1.0669794021685026, 1.1899763298001682,
    1.2763747550663285, 0.51155496344831108, 1.0020264029885513, 0.6435753434651208,
    0.54552010017001584, 0.53906473147144662, 0.65819154279819381, 0.59224552994510105,
    0.54902934211529453, 1.3278670414723839, 0.72876988203517967, 0.97373280163306053};
static const double BILINEAR_ALIGN_SIZE_4X6_y[24] = {
    -1.3747220677335625, -0.21503113131028315, 0.59983747866614823, 0.72506143574888349,
    0.65623545093723801, 0.49038449517840199, 0.52747698793693831, 0.71327886934635376,
    0.90644665975889771, 1.1143462681776986, 0.66528619268878308, -0.11225372475399094,
    1.0526213924262238, 0.5448415508953548, 0.35417194081341313, 0.79772279362932641,
    0.40403446935599419, -0.40827344346196126, 0.20071114573429361, -0.72034308666328084,
    -1.0569866781703061, -0.22480898789623358, -0.12751971906112894, -0.39767466094550885};
static const double BILINEAR_ALIGN_SIZE_4X6_dx[12] = {
    1.8117430759296993, 2.5082244915097069, 1.8079571242066734, 1.6176243470659948,
    2.0283149689372868, 2.0097286087231221, 1.8396556989328832, 1.5826939081380147,
    1.3887553349247852, 1.4725672563380572, 1.9568873026460123, 1.5176650116269499};
/* bilinear_size_2x3_down: x [1, 1, 5, 6] -> y [1, 1, 2, 3] */
static const double BILINEAR_SIZE_2X3_DOWN_x[30] = {
    0.38567028396988556, -1.3107291069384521, -0.53753273928097267, -0.44327755915240274,
    1.3690477263371412, -1.4054644769581106, -1.2325647664550234, 1.2570856054119921,
    -0.74189748427189139, 1.0103380771048549, 0.7118317086016428, -1.1413609759847057,
    0.60099353364445651, 0.054739802256795089, 1.1005084795323601, 1.3904695651763523,
    0.043630291539526578, -0.31098525021397783, 1.3536569281177528, -0.97898320821030438,
    0.23005254230196437, -1.494861410948541, 1.4810131072251642, 1.1174868936864466,
    -0.7298624339442864, 1.3564618956433159, 0.62631774787162442, 0.61106673898768982,
    1.0415268833635878, -0.23386805521700982};
static const double BILINEAR_SIZE_2X3_DOWN_g[6] = {
    1.0741220037810923, 0.82377748243580684, 1.4419168777237215, 1.2241161448056106,
    0.56034375370948697, 1.4442337958698468};
static const double BILINEAR_SIZE_2X3_DOWN_y[6] = {
    -0.10643703826220757, -0.021936064991810611, -0.16562556909626974, 0.21882757767767186,
    -0.31963026488505192, 1.0753948538601765};
static const double BILINEAR_SIZE_2X3_DOWN_dx[30] = {
    0.13426525047263654, 0.13426525047263654, 0.10297218530447586, 0.10297218530447586,
    0.18023960971546518, 0.18023960971546518, 0.40279575141790963, 0.40279575141790963,
    0.30891655591342759, 0.30891655591342759, 0.54071882914639557, 0.54071882914639557,
    0, 0, 0, 0,
    0, 0, 0.45904355430210397, 0.45904355430210397,
    0.21012890764105763, 0.21012890764105763, 0.54158767345119252, 0.54158767345119252,
    0.15301451810070132, 0.15301451810070132, 0.070042969213685871, 0.070042969213685871,
    0.18052922448373085, 0.18052922448373085};

static upsample_params by_size(int64_t h, int64_t w, upsample_mode m, bool align) {
    return (upsample_params){{h, w}, {0, 0}, m, align};
}
static upsample_params by_scale(double h, double w, upsample_mode m, bool align) {
    return (upsample_params){{0, 0}, {h, w}, m, align};
}

typedef tensor *(*apply_fn)(tensor *x, const void *arg);
static tensor *apply_adaptive(tensor *x, const void *arg) {
    const int64_t *o = arg;
    return tensor_adaptive_avg_pool2d(x, o[0], o[1]);
}
static tensor *apply_upsample(tensor *x, const void *arg) {
    return tensor_upsample(x, *(const upsample_params *)arg);
}

/* y = f(x) and dx for upstream g agree with PyTorch's, in float64 (to
 * rounding) and float32 (to float32 rounding of values of order 1). */
static void check_torch(apply_fn f, const void *arg, const int64_t *xs, const int64_t *ys,
                        const double *x, const double *g, const double *y, const double *dx) {
    for (int d = 0; d < 2; d++) {
        dtype dt = d ? DTYPE_F32 : DTYPE_F64;
        double tol = d ? 2e-6 : 1e-13;
        tensor *a = leaf_dt(dt, 4, xs, x);
        tensor *out = f(a, arg);
        ck_assert_ptr_nonnull(out);
        for (int i = 0; i < 4; i++) ck_assert_int_eq(out->shape[i], ys[i]);
        ck_assert_tensor(out, y, tol);
        tensor *gt = tensor_from_doubles(dt, 4, ys, g);
        ck_assert_int_eq(tensor_backward_with(out, gt), 0);
        ck_assert_tensor(a->grad, dx, tol);
        tensor_free(gt);
        tape_reset();
        tensor_free(a);
    }
}

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define TORCH_CASE(f, arg, xs, ys, NAME) \
    check_torch(f, arg, xs, ys, NAME##_x, NAME##_g, NAME##_y, NAME##_dx)

START_TEST(test_adaptive_avg_pool2d_matches_pytorch) {
    TORCH_CASE(apply_adaptive, DIMS(3, 4), DIMS(1, 2, 5, 7), DIMS(1, 2, 3, 4), ADAPTIVE_5X7_TO_3X4);
    TORCH_CASE(apply_adaptive, DIMS(6, 2), DIMS(1, 1, 4, 3), DIMS(1, 1, 6, 2), ADAPTIVE_4X3_TO_6X2);
}
END_TEST

START_TEST(test_upsample_nearest_matches_pytorch) {
    upsample_params a = by_scale(1.7, 2.5, UPSAMPLE_NEAREST, false);
    /* floor(3 1.7) = 5, floor(4 2.5) = 10 */
    TORCH_CASE(apply_upsample, &a, DIMS(1, 2, 3, 4), DIMS(1, 2, 5, 10), NEAREST_SCALE_1P7_2P5);
    upsample_params b = by_size(5, 3, UPSAMPLE_NEAREST, false);
    TORCH_CASE(apply_upsample, &b, DIMS(1, 1, 4, 7), DIMS(1, 1, 5, 3), NEAREST_SIZE_5X3);
}
END_TEST

START_TEST(test_upsample_bilinear_matches_pytorch) {
    upsample_params a = by_scale(1.5, 2.0, UPSAMPLE_BILINEAR, false);
    TORCH_CASE(apply_upsample, &a, DIMS(1, 1, 3, 4), DIMS(1, 1, 4, 8), BILINEAR_SCALE_1P5_2);
    upsample_params b = by_size(4, 6, UPSAMPLE_BILINEAR, true);
    TORCH_CASE(apply_upsample, &b, DIMS(1, 1, 3, 4), DIMS(1, 1, 4, 6), BILINEAR_ALIGN_SIZE_4X6);
    upsample_params c = by_size(2, 3, UPSAMPLE_BILINEAR, false);
    TORCH_CASE(apply_upsample, &c, DIMS(1, 1, 5, 6), DIMS(1, 1, 2, 3), BILINEAR_SIZE_2X3_DOWN);
}
END_TEST

/* ------------------------------------------------ by hand */
/* x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]] (3x3) -> 2x2: row windows [0, 2) and
 * [1, 3) (floor(1 3/2) = 1, ceil(2 3/2) = 3), columns likewise, so each output
 * is the mean of a 2x2 block: (1+2+4+5)/4 = 3, 4, 6, 7. The centre element 5
 * lies in all four windows: with upstream ones its gradient is 4 / 4 = 1, a
 * corner's 1/4, an edge middle's 2/4. */
START_TEST(test_adaptive_avg_pool2d_overlapping_windows_by_hand) {
    tensor *x = leaf(SHAPE(1, 1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    tensor *y = tensor_adaptive_avg_pool2d(x, 2, 2);
    ck_assert_tensor(y, ((double[]){3, 4, 6, 7}), 1e-15);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25}), 1e-15);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* x = [[1, 2], [3, 4]], bilinear x2 without align_corners: source coordinate
 * (i + 0.5) / 2 - 0.5 = -0.25 (clipped to 0), 0.25, 0.75, 1.25 (clipped by the
 * last tap). Row 0 of y: 1, 1.25, 1.75, 2; with align_corners, size 3x3 the
 * centre is the mean 2.5 and the corners are the input's. */
START_TEST(test_upsample_bilinear_by_hand) {
    tensor *x = leaf(SHAPE(1, 1, 2, 2), (double[]){1, 2, 3, 4});
    tensor *y = tensor_upsample(x, by_scale(2, 2, UPSAMPLE_BILINEAR, false));
    ck_assert_int_eq(y->shape[2], 4);
    ck_assert_tensor(y, ((double[]){1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3,
                                    3.25, 3.75, 4}),
                     1e-15);
    /* every input gets the sum of its weights: by symmetry 16 / 4 = 4 each */
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){4, 4, 4, 4}), 1e-14);
    tape_reset();
    y = tensor_upsample(x, by_size(3, 3, UPSAMPLE_BILINEAR, true));
    ck_assert_tensor(y, ((double[]){1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}), 1e-15);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* nearest x2 repeats each element in a 2x2 block; the gradient sums the block.
 * An infinity is copied, not turned into NaN by a zero weight. */
START_TEST(test_upsample_nearest_by_hand) {
    tensor *x = leaf(SHAPE(1, 1, 1, 2), (double[]){1, INFINITY});
    tensor *y = tensor_upsample(x, by_scale(2, 2, UPSAMPLE_NEAREST, false));
    ck_assert_int_eq(y->shape[2], 2);
    ck_assert_int_eq(y->shape[3], 4);
    ck_assert_double_eq(tensor_get(y, 0), 1);
    ck_assert_double_eq(tensor_get(y, 1), 1);
    ck_assert(isinf(tensor_get(y, 2)) && isinf(tensor_get(y, 7)));
    backward_g(y, (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    ck_assert_tensor(x->grad, ((double[]){1 + 2 + 5 + 6, 3 + 4 + 7 + 8}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* PyTorch's nearest copies when the output size equals the input's and
 * halves the index when it is twice the input's, whatever the scale_factor
 * (floor(dst / 1.1) or floor(dst / 2.05) would differ: floor(18 / 2.05) = 8,
 * where PyTorch takes 18 / 2 = 9). x = arange(40) as [4, 10], scale (1.1,
 * 2.05) -> [4, 20] with y[i, j] = 10 i + floor(j / 2), as PyTorch prints. */
START_TEST(test_upsample_nearest_same_and_double_size_as_pytorch) {
    double x[40], want[80];
    for (int i = 0; i < 40; i++) x[i] = i;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 20; j++) want[i * 20 + j] = 10 * i + j / 2;
    tensor *a = constant(SHAPE(1, 1, 4, 10), x);
    tensor *y = tensor_upsample(a, by_scale(1.1, 2.05, UPSAMPLE_NEAREST, false));
    ck_assert_int_eq(y->shape[2], 4);
    ck_assert_int_eq(y->shape[3], 20);
    ck_assert_tensor(y, want, 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* y and dx of each op on a tensor large enough to be split over threads
 * (planes are whole per thread), as float32 bits, with n threads. */
static void resample_run(int threads, int which, tensor **out) {
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 77, (uint64_t)which);
    const int64_t xs[4] = {4, 8, 30, 33};
    tensor *x64 = tg_sample_tensor(&g, 4, xs, -1, 1);
    tensor *x = tensor_to_dtype(x64, DTYPE_F32);
    tensor_set_requires_grad(x, true);
    tensor *y = which == 0 ? tensor_adaptive_avg_pool2d(x, 7, 9)
                : which == 1 ? tensor_upsample(x, by_scale(2.5, 1.7, UPSAMPLE_BILINEAR, false))
                             : tensor_upsample(x, by_size(50, 41, UPSAMPLE_NEAREST, false));
    ck_assert_ptr_nonnull(y);
    tensor *w64 = tg_sample_tensor(&g, 4, y->shape, 0.5, 1.5), *w = tensor_to_dtype(w64, DTYPE_F32);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, w))), 0);
    out[0] = tensor_detach(y), out[1] = tensor_clone(x->grad);
    tape_reset();
    tensor_free(x64), tensor_free(x), tensor_free(w64), tensor_free(w);
}

START_TEST(test_resample_threads_bit_identical) {
    for (int m = 0; m < 3; m++) {
        tensor *one[2], *two[2];
        resample_run(1, m, one);
        resample_run(2, m, two);
        for (int i = 0; i < 2; i++) {
            ck_assert_msg(memcmp(one[i]->data, two[i]->data, (size_t)one[i]->size * 4) == 0,
                          "op %d result %d differs between 1 and 2 threads", m, i);
            tensor_free(one[i]), tensor_free(two[i]);
        }
    }
    tapegrad_set_threads(1);
}
END_TEST

START_TEST(test_adaptive_avg_pool2d_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("adaptive_avg_pool2d", 300, 2, CHECK_ALL), 10);
}
END_TEST

START_TEST(test_upsample_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("upsample", 300, 2, CHECK_ALL), 18);
}
END_TEST

/* ------------------------------------------------ errors */
START_TEST(test_adaptive_avg_pool2d_errors) {
    tensor *x3 = tensor_zeros(DTYPE_F32, SHAPE(2, 5, 5));
    ck_assert_fails_with(tensor_adaptive_avg_pool2d(x3, 2, 2),
                         "adaptive_avg_pool2d: input must be 4-D (B, C, H, W), got [2,5,5]");
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 5, 5));
    ck_assert_fails_with(tensor_adaptive_avg_pool2d(x, 0, 2),
                         "adaptive_avg_pool2d: output size [0,2] must be >= 1 (input [1,2,5,5])");
    ck_assert_fails_with(tensor_adaptive_avg_pool2d(x, 3, -1),
                         "adaptive_avg_pool2d: output size [3,-1] must be >= 1 (input [1,2,5,5])");
    tensor *e = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 0, 5));
    ck_assert_fails_with(tensor_adaptive_avg_pool2d(e, 1, 1),
                         "adaptive_avg_pool2d: input [1,2,0,5] must have H and W >= 1");
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(1, 2, 5, 5));
    ck_assert_fails(tensor_adaptive_avg_pool2d(i, 1, 1), "adaptive_avg_pool2d: input 0 is int64");
    ck_assert_fails_with(tensor_adaptive_avg_pool2d(NULL, 1, 1), "adaptive_avg_pool2d: input 0 is NULL");
    tensor_free(x3), tensor_free(x), tensor_free(e), tensor_free(i);
}
END_TEST

START_TEST(test_upsample_errors) {
    tensor *x3 = tensor_zeros(DTYPE_F32, SHAPE(2, 5, 5));
    ck_assert_fails_with(tensor_upsample(x3, by_size(4, 4, UPSAMPLE_NEAREST, false)),
                         "upsample: input must be 4-D (B, C, H, W), got [2,5,5]");
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(1, 2, 3, 4));
    ck_assert_fails_with(
        tensor_upsample(x, (upsample_params){{4, 4}, {2, 2}, UPSAMPLE_NEAREST, false}),
        "upsample: give either size [4,4] or scale_factor [2,2], not both (input [1,2,3,4])");
    ck_assert_fails_with(
        tensor_upsample(x, (upsample_params){{0, 0}, {0, 0}, UPSAMPLE_BILINEAR, false}),
        "upsample: give either size [0,0] or scale_factor [0,0], not neither (input [1,2,3,4])");
    ck_assert_fails_with(tensor_upsample(x, by_size(4, 0, UPSAMPLE_NEAREST, false)),
                         "upsample: output size must be >= 1: size [4,0], scale_factor [0,0], "
                         "input [1,2,3,4]");
    /* floor(3 0.3) = 0 rows */
    ck_assert_fails_with(tensor_upsample(x, by_scale(0.3, 2, UPSAMPLE_BILINEAR, false)),
                         "upsample: output size must be >= 1: size [0,0], scale_factor [0.3,2], "
                         "input [1,2,3,4]");
    ck_assert_fails_with(tensor_upsample(x, by_scale(2, -1, UPSAMPLE_BILINEAR, false)),
                         "upsample: output size must be >= 1: size [0,0], scale_factor [2,-1], "
                         "input [1,2,3,4]");
    ck_assert_fails_with(tensor_upsample(x, by_scale(2, NAN, UPSAMPLE_BILINEAR, false)),
                         "upsample: output size must be >= 1: size [0,0], scale_factor [2,nan], "
                         "input [1,2,3,4]");
    ck_assert_fails_with(tensor_upsample(x, by_size(4, 4, UPSAMPLE_NEAREST, true)),
                         "upsample: align_corners applies to bilinear only, not nearest");
    ck_assert_fails_with(tensor_upsample(x, by_size(4, 4, (upsample_mode)7, false)),
                         "upsample: mode 7 is neither UPSAMPLE_NEAREST nor UPSAMPLE_BILINEAR");
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(1, 2, 5, 5));
    ck_assert_fails(tensor_upsample(i, by_size(4, 4, UPSAMPLE_NEAREST, false)), "upsample: input 0 is int64");
    ck_assert_fails_with(tensor_upsample(NULL, by_size(4, 4, UPSAMPLE_NEAREST, false)),
                         "upsample: input 0 is NULL");
    tensor_free(x3), tensor_free(x), tensor_free(i);
}
END_TEST

Suite *resample_suite(void) {
    Suite *s = suite_create("ops_resample");
    TCase *tc = tcase_create("resample");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_adaptive_avg_pool2d_matches_pytorch);
    tcase_add_test(tc, test_upsample_nearest_matches_pytorch);
    tcase_add_test(tc, test_upsample_bilinear_matches_pytorch);
    tcase_add_test(tc, test_adaptive_avg_pool2d_overlapping_windows_by_hand);
    tcase_add_test(tc, test_upsample_bilinear_by_hand);
    tcase_add_test(tc, test_upsample_nearest_by_hand);
    tcase_add_test(tc, test_upsample_nearest_same_and_double_size_as_pytorch);
    tcase_add_test(tc, test_resample_threads_bit_identical);
    tcase_add_test(tc, test_adaptive_avg_pool2d_central_differences_all_samples);
    tcase_add_test(tc, test_upsample_central_differences_all_samples);
    tcase_add_test(tc, test_adaptive_avg_pool2d_errors);
    tcase_add_test(tc, test_upsample_errors);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(resample_suite)
